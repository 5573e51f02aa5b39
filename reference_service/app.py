"""HTTP layer of the reference service: the spec's paths, status codes and error bodies, on Starlette.

Agent-facing operations authenticate with the infra-env's token in ``X-Secret-Key``; user-facing ones with
``Authorization: Bearer <admin token>``; both are skipped in ``auth=none`` mode. Paths outside the spec live
under ``/api/reference`` (token lookup, reply history, and in test mode the request journal and fault
injection), so nothing non-standard hides among the real API.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import secrets
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reference_service import registry
from reference_service.http import (
    agent_version_header,
    check_model,
    error,
    public,
    read_json,
    require_agent_auth,
    require_user_auth,
    service_of,
)
from reference_service.lifecycle import BASE, ReferenceService, ServiceRefusal
from reference_service.store import _now_iso

log = logging.getLogger("reference_service")

#: Area modules: each registers validations, step arguments, reply handlers and routes on import.
AREA_MODULES = ("core", "hardware", "network", "preinstall", "install")


def load_areas() -> list[str]:
    loaded = []
    for name in AREA_MODULES:
        try:
            importlib.import_module(f"reference_service.{name}")
            loaded.append(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"reference_service.{name}":
                raise
    return loaded


# -- agent-facing --------------------------------------------------------------------------------------------
async def register_host(request: Request) -> Response:
    ie = request.path_params["infra_env_id"]
    require_agent_auth(request, ie)
    body = await read_json(request)
    check_model("host-create-params", body)
    result = service_of(request).register_host(ie, body["host_id"],
                                         body.get("discovery_agent_version") or agent_version_header(request))
    return JSONResponse(public(result), status_code=201)


async def get_next_steps(request: Request) -> Response:
    ie, host_id = request.path_params["infra_env_id"], request.path_params["host_id"]
    require_agent_auth(request, ie)
    try:
        timestamp = int(request.query_params.get("timestamp") or 0)
    except ValueError:
        raise ServiceRefusal(400, "timestamp must be an integer") from None
    return JSONResponse(service_of(request).next_steps(ie, host_id, timestamp, agent_version_header(request)))


async def post_step_reply(request: Request) -> Response:
    ie, host_id = request.path_params["infra_env_id"], request.path_params["host_id"]
    require_agent_auth(request, ie)
    service_of(request).post_reply(ie, host_id, await read_json(request))
    return Response(status_code=204)


# -- user-facing ----------------------------------------------------------------------------------------------
async def create_cluster(request: Request) -> Response:
    require_user_auth(request)
    body = await read_json(request)
    check_model("cluster-create-params", body)
    svc = service_of(request)
    cid = str(uuid.uuid4())
    now = _now_iso()
    cluster = {k: v for k, v in body.items() if k != "pull_secret"}
    cluster.update({
        "kind": "Cluster", "id": cid, "href": f"{BASE}/v2/clusters/{cid}", "status": "insufficient",
        "status_info": "Cluster is not ready for install", "image_info": {}, "pull_secret_set": True,
        "created_at": now, "updated_at": now, "hosts": [], "total_host_count": 0,
    })
    svc.store.save_cluster(cluster)
    svc.store.add_event(f"Successfully registered cluster {cluster.get('name')}", cluster_id=cid)
    return JSONResponse(_cluster_view(svc, cid), status_code=201)


def _cluster_view(svc: ReferenceService, cluster_id: str) -> dict[str, Any]:
    cluster = svc.store.get_cluster(cluster_id)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    cluster["hosts"] = [public(h) for h in svc.store.list_hosts(cluster_id=cluster_id)]
    return public(cluster)


async def list_clusters(request: Request) -> Response:
    require_user_auth(request)
    svc = service_of(request)
    return JSONResponse([_cluster_view(svc, c["id"]) for c in svc.store.list_clusters()])


async def get_cluster(request: Request) -> Response:
    require_user_auth(request)
    return JSONResponse(_cluster_view(service_of(request), request.path_params["cluster_id"]))


async def update_cluster(request: Request) -> Response:
    require_user_auth(request)
    body = await read_json(request)
    check_model("v2-cluster-update-params", body)
    svc = service_of(request)
    cid = request.path_params["cluster_id"]
    cluster = svc.store.get_cluster(cid)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cid} not found")
    cluster.update({k: v for k, v in body.items() if k != "pull_secret"})
    svc.store.save_cluster(cluster)
    for host in svc.store.list_hosts(cluster_id=cid):
        svc.refresh_host(host)
    return JSONResponse(_cluster_view(svc, cid), status_code=201)


async def install_cluster(request: Request) -> Response:
    require_user_auth(request)
    svc = service_of(request)
    cid = request.path_params["cluster_id"]
    svc.install_cluster(cid)
    return JSONResponse(_cluster_view(svc, cid), status_code=202)


async def list_cluster_hosts(request: Request) -> Response:
    require_user_auth(request)
    hosts = service_of(request).store.list_hosts(cluster_id=request.path_params["cluster_id"])
    role = request.query_params.get("role")
    return JSONResponse([public(h) for h in hosts if not role or h.get("role") == role])


async def create_infra_env(request: Request) -> Response:
    require_user_auth(request)
    body = await read_json(request)
    check_model("infra-env-create-params", body)
    svc = service_of(request)
    cluster_id = body.get("cluster_id")
    if cluster_id and svc.store.get_cluster(cluster_id) is None:
        raise ServiceRefusal(400, f"cluster {cluster_id} does not exist")
    iid = str(uuid.uuid4())
    now = _now_iso()
    doc = {k: v for k, v in body.items() if k != "pull_secret"}
    doc.update({"kind": "InfraEnv", "id": iid, "href": f"{BASE}/v2/infra-envs/{iid}", "type": "full-iso",
                "created_at": now, "updated_at": now, "pull_secret_set": True})
    doc["type"] = body.get("image_type") or "full-iso"
    doc.pop("image_type", None)
    svc.store.save_infra_env(doc, token=secrets.token_urlsafe(32))
    return JSONResponse(public(doc), status_code=201)


async def list_infra_envs(request: Request) -> Response:
    require_user_auth(request)
    return JSONResponse([public(d) for d in service_of(request).store.list_infra_envs()])


async def get_infra_env(request: Request) -> Response:
    ie = request.path_params["infra_env_id"]
    require_user_auth(request)
    doc = service_of(request).store.get_infra_env(ie)
    if doc is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    return JSONResponse(public(doc))


async def list_hosts(request: Request) -> Response:
    require_user_auth(request)
    svc = service_of(request)
    ie = request.path_params["infra_env_id"]
    if svc.store.get_infra_env(ie) is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    return JSONResponse([public(svc.refresh_host(h)) for h in svc.store.list_hosts(infra_env_id=ie)])


async def get_host(request: Request) -> Response:
    require_user_auth(request)
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    return JSONResponse(public(svc.refresh_host(host)))


async def update_host(request: Request) -> Response:
    require_user_auth(request)
    body = await read_json(request)
    check_model("host-update-params", body)
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    if "host_role" in body:
        host["role"] = body["host_role"]
    if "host_name" in body:
        try:
            from reference_service.hardware import hostname_problem
        except ImportError:
            problem = None
        else:
            problem = hostname_problem(str(body["host_name"]))
        if problem:
            raise ServiceRefusal(400, problem)
        host["requested_hostname"] = body["host_name"]
    if body.get("disks_skip_formatting"):
        skipped = registry.skipped_formatting(host)
        for change in body["disks_skip_formatting"]:
            skipped = [d for d in skipped if d != change["disk_id"]]
            if change["skip_formatting"]:
                skipped.append(change["disk_id"])
        host["skip_formatting_disks"] = ",".join(skipped)
    for key in ("machine_config_pool_name", "node_labels"):
        if key in body:
            host[key] = body[key] if isinstance(body[key], str) else json.dumps(body[key])
    return JSONResponse(public(svc.refresh_host(host)), status_code=201)


async def delete_host(request: Request) -> Response:
    require_user_auth(request)
    svc = service_of(request)
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    host = svc.require_host(ie, hid)
    svc.store.delete_host(ie, hid)
    if host.get("cluster_id"):
        svc.refresh_cluster(host["cluster_id"])
    return Response(status_code=204)


async def list_events(request: Request) -> Response:
    require_user_auth(request)
    q = request.query_params
    return JSONResponse(service_of(request).store.events(cluster_id=q.get("cluster_id"), host_id=q.get("host_id")))


# -- reference extras -------------------------------------------------------------------------------------------
async def infra_env_token(request: Request) -> Response:
    require_user_auth(request)
    token = service_of(request).store.infra_env_token(request.path_params["infra_env_id"])
    if token is None:
        raise ServiceRefusal(404, "no such infra-env")
    return JSONResponse({"token": token})


async def host_replies(request: Request) -> Response:
    require_user_auth(request)
    q = request.query_params
    return JSONResponse(service_of(request).store.replies(request.path_params["host_id"], q.get("step_type")))


async def request_journal(request: Request) -> Response:
    return JSONResponse(_test_mode(request).store.requests())


async def add_fault(request: Request) -> Response:
    """Test mode: the next ``count`` requests matching ``method`` and ``path`` (a regex) get ``status``."""
    svc = _test_mode(request)
    body = await read_json(request)
    fault = {"method": str(body.get("method", "")).upper(), "path": str(body.get("path", "")),
             "status": int(body.get("status", 503)), "count": int(body.get("count", 1)),
             "delay": float(body.get("delay", 0))}
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


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def index(request: Request) -> Response:
    try:
        from reference_service.views import render_hosts_page
    except ImportError:
        hosts = service_of(request).store.list_hosts()
        lines = [f"{h['id']}  {h.get('status')}  {h.get('status_info')}" for h in hosts]
        return PlainTextResponse("\n".join(lines) + "\n")
    return HTMLResponse(render_hosts_page(service_of(request)))


# -- app ----------------------------------------------------------------------------------------------------------
def _api(path: str) -> str:
    return BASE + path


def routes() -> list[Route]:
    return [
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts"), register_host, methods=["POST"]),
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts"), list_hosts, methods=["GET"]),
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions"), get_next_steps, methods=["GET"]),
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions"), post_step_reply,
              methods=["POST"]),
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts/{host_id}"), get_host, methods=["GET"]),
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts/{host_id}"), update_host, methods=["PATCH"]),
        Route(_api("/v2/infra-envs/{infra_env_id}/hosts/{host_id}"), delete_host, methods=["DELETE"]),
        Route(_api("/v2/infra-envs"), create_infra_env, methods=["POST"]),
        Route(_api("/v2/infra-envs"), list_infra_envs, methods=["GET"]),
        Route(_api("/v2/infra-envs/{infra_env_id}"), get_infra_env, methods=["GET"]),
        Route(_api("/v2/clusters"), create_cluster, methods=["POST"]),
        Route(_api("/v2/clusters"), list_clusters, methods=["GET"]),
        Route(_api("/v2/clusters/{cluster_id}"), get_cluster, methods=["GET"]),
        Route(_api("/v2/clusters/{cluster_id}"), update_cluster, methods=["PATCH"]),
        Route(_api("/v2/clusters/{cluster_id}/hosts"), list_cluster_hosts, methods=["GET"]),
        Route(_api("/v2/clusters/{cluster_id}/actions/install"), install_cluster, methods=["POST"]),
        Route(_api("/v2/events"), list_events, methods=["GET"]),
        Route("/api/reference/infra-envs/{infra_env_id}/token", infra_env_token, methods=["GET"]),
        Route("/api/reference/hosts/{host_id}/replies", host_replies, methods=["GET"]),
        Route("/api/reference/requests", request_journal, methods=["GET"]),
        Route("/api/reference/faults", add_fault, methods=["POST"]),
        Route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/instructions", queue_instruction,
              methods=["POST"]),
        Route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/status", force_status, methods=["PUT"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]


class _Middleware:
    """Fault injection, the test-mode request journal, and ServiceRefusal -> the spec's error bodies."""

    def __init__(self, app: Any, service: ReferenceService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault["delay"]:
                await asyncio.sleep(fault["delay"])
            await error(fault["status"], f"injected fault {fault['status']}")(scope, receive, send)
            self._journal(scope, b"", fault["status"])
            return
        body_chunks: list[bytes] = []
        status_box = [0]

        async def recv() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body_chunks.append(message.get("body", b""))
            return message

        async def snd(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        await self.app(scope, recv, snd)
        self._journal(scope, b"".join(body_chunks), status_box[0])

    def _journal(self, scope: Any, body: bytes, status: int) -> None:
        if self.service.settings.test_mode and scope["path"].startswith(BASE):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.service.store.add_request(scope["method"], scope["path"], headers,
                                           body.decode("utf-8", "replace"), status)

    def _take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        for fault in self.service.faults:
            if fault["count"] > 0 and fault["method"] in ("", method) and re.search(fault["path"], path):
                fault["count"] -= 1
                return fault
        return None


def create_app(service: ReferenceService) -> Any:
    load_areas()
    app = Starlette(routes=[*routes(), *registry.ROUTES])
    app.state.service = service
    app.state.started = time.time()

    async def refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceRefusal)
        return error(exc.status, exc.reason)

    app.add_exception_handler(ServiceRefusal, refusal)
    return _Middleware(app, service)
