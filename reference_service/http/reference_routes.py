"""The routes outside the spec, all under ``/api/reference/`` (plus ``/healthz`` and the hosts page at ``/``):
an infra-env's agent token, a host's reply history and logs, choosing an installation disk, and in
``--test-mode`` the request journal, fault injection, queued instructions and forced states."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from common.errors import ServiceRefusal
from reference_service.http.auth import Auth
from reference_service.http.common import public, read_json, service_of
from reference_service.http.routing import route
from reference_service.orchestrator import ReferenceService


async def infra_env_token(request: Request) -> Response:
    token = service_of(request).store.infra_env_token(request.path_params["infra_env_id"])
    if token is None:
        raise ServiceRefusal(404, "no such infra-env")
    return JSONResponse({"token": token})


async def host_replies(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(service_of(request).store.replies(request.path_params["host_id"], q.get("step_type")))


async def host_logs(request: Request) -> Response:
    params = request.path_params
    data = service_of(request).store.get_blob(f"logs/{params['cluster_id']}/{params['host_id']}")
    if data is None:
        raise ServiceRefusal(404, "no logs uploaded for this host")
    return Response(data, media_type="application/gzip")


async def set_installation_disk(request: Request) -> Response:
    """Choose a host's installation disk by path (what the hardware area derives from the inventory)."""
    body = await read_json(request)
    path = body.get("path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path.startswith("/dev/"):
        raise ServiceRefusal(400, "path must be a device path under /dev/")
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    host["installation_disk_path"] = path
    host["installation_disk_id"] = body.get("id") or path
    return JSONResponse(public(svc.refresh_host(host)))


async def request_journal(request: Request) -> Response:
    return JSONResponse(_test_mode(request).store.requests())


async def add_fault(request: Request) -> Response:
    """Test mode: the next ``count`` requests matching ``method`` and ``path`` (a regex) get ``status``, with
    ``body`` (any JSON) when given, else an Error document."""
    svc = _test_mode(request)
    body = await read_json(request)
    fault = {"method": str(body.get("method", "")).upper(), "path": str(body.get("path", "")),
             "status": int(body.get("status", 503)), "count": int(body.get("count", 1)),
             "delay": float(body.get("delay", 0)), "body": body.get("body")}
    try:
        re.compile(str(fault["path"]))
    except re.error as exc:
        raise ServiceRefusal(400, f"path is not a regular expression: {exc}") from exc
    svc.faults.append(fault)
    return JSONResponse(fault, status_code=201)


def _test_mode(request: Request) -> ReferenceService:
    svc = service_of(request)
    if not svc.settings.test_mode:
        raise ServiceRefusal(404, "this endpoint exists only in test mode")
    return svc


async def queue_instruction(request: Request) -> Response:
    """Test mode: hand a host any step (third-party ones included) on its next poll."""
    svc = _test_mode(request)
    body = await read_json(request)
    svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    args = body.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ServiceRefusal(400, "args must be a list of strings")
    step = svc.queue_instruction(request.path_params["host_id"], str(body.get("step_type", "")), args)
    return JSONResponse(step, status_code=201)


async def force_status(request: Request) -> Response:
    """Test mode: put a host in a status (e.g. binding, which makes the service tell the agent to exit)."""
    svc = _test_mode(request)
    body = await read_json(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    svc.set_status(host, str(body["status"]), body.get("status_info"))
    svc.store.save_host(host)
    return JSONResponse(public(host))


async def patch_cluster_document(request: Request) -> Response:
    """Test mode: change a cluster's stored document field by field (null removes a field), as a test that
    needs a state this machine cannot reach (an installing cluster) would. The service owns its database and
    keeps its documents in memory, so this is the way to edit them, not a second connection."""
    svc = _test_mode(request)
    cluster = svc.store.get_cluster(request.path_params["cluster_id"])
    if cluster is None:
        raise ServiceRefusal(404, "no such cluster")
    svc.store.save_cluster(_merged(cluster, await read_json(request)))
    return JSONResponse(svc.store.get_cluster(cluster["id"]))


async def patch_host_document(request: Request) -> Response:
    """Test mode: change a host's stored document field by field (null removes a field), without any rule
    acting on it (a day-2 host's kind, an installation round's bookkeeping)."""
    svc = _test_mode(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    svc.store.save_host(_merged(host, await read_json(request)))
    return JSONResponse(public(host))


def _merged(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict) or {"id", "infra_env_id", "cluster_id"} & patch.keys():
        raise ServiceRefusal(400, "the body must be an object of fields to change (not id, infra_env_id, cluster_id)")
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


async def healthz(request: Request) -> Response:
    """Answered from memory, whatever the disk does (the store's commits run in a process of their own): 503
    saying why while the database's storage is stuck or refuses writes, which every acknowledged request needs."""
    stuck = service_of(request).store.stuck()
    if stuck:
        return PlainTextResponse(f"storage stuck: {stuck}\n", status_code=503)
    return PlainTextResponse("ok")


ROUTES = [
    route("/api/reference/infra-envs/{infra_env_id}/token", infra_env_token, methods=["GET"], auth=Auth.ADMIN),
    route("/api/reference/hosts/{host_id}/replies", host_replies, methods=["GET"], auth=Auth.ADMIN),
    route("/api/reference/clusters/{cluster_id}/hosts/{host_id}/logs", host_logs, methods=["GET"], auth=Auth.ADMIN),
    route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/installation-disk", set_installation_disk,
          methods=["PUT"], auth=Auth.ADMIN),
    route("/api/reference/requests", request_journal, methods=["GET"], auth=Auth.ADMIN),
    route("/api/reference/faults", add_fault, methods=["POST"], auth=Auth.ADMIN),
    route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/instructions", queue_instruction,
          methods=["POST"], auth=Auth.ADMIN),
    route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/status", force_status,
          methods=["PUT"], auth=Auth.ADMIN),
    route("/api/reference/clusters/{cluster_id}/document", patch_cluster_document, methods=["PATCH"],
          auth=Auth.ADMIN),
    route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/document", patch_host_document,
          methods=["PATCH"], auth=Auth.ADMIN),
    route("/healthz", healthz, methods=["GET"], auth=Auth.PUBLIC),
    # the real service's probes, which deployments and clients point at it
    route("/health", healthz, methods=["GET"], auth=Auth.PUBLIC),
    route("/ready", healthz, methods=["GET"], auth=Auth.PUBLIC),
]
