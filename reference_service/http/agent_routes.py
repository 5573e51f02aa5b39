"""The agent-facing routes: registration, instructions, step replies, progress, Ignition, logs, the OS image.

The paths, status codes and error bodies are the spec's; every route authenticates the agent with its
infra-env's token (``Auth.AGENT``), except the OS image, which the agent fetches like a mirror, and the logs
upload, which the installer's controller may also make with the admin token.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from common.errors import ServiceRefusal
from reference_service.http.auth import Auth
from reference_service.http.common import (
    FastJSONResponse,
    agent_version_header,
    check_model,
    decode_json,
    public,
    read_json,
    service_of,
)
from reference_service.http.routing import canonical_uuid, reply_limit, route
from reference_service.orchestrator import BASE
from reference_service.reply_workers import CHECK_IN_WORKER
from reference_service.store.database import _now_iso
from rules.cluster_model import machine_cidrs
from rules.install import IGNITION_CLUSTER_STATES, OS_IMAGE_PATH, host_ignition

MAX_LOGS_UPLOAD = 256 << 20


async def register_host(request: Request) -> Response:
    ie = request.path_params["infra_env_id"]
    body = await read_json(request)
    if isinstance(body, dict):
        body["host_id"] = canonical_uuid(body.get("host_id"))
    check_model("host-create-params", body)
    result = service_of(request).register_host(ie, body["host_id"],
                                         body.get("discovery_agent_version") or agent_version_header(request))
    return FastJSONResponse(public(result), status_code=201)


async def get_next_steps(request: Request) -> Response:
    ie, host_id = request.path_params["infra_env_id"], request.path_params["host_id"]
    try:
        timestamp = int(request.query_params.get("timestamp") or 0)
    except ValueError:
        raise ServiceRefusal(400, "timestamp must be an integer") from None
    return FastJSONResponse(service_of(request).next_steps(ie, host_id, timestamp, agent_version_header(request)))


async def post_step_reply(request: Request) -> Response:
    ie, host_id = request.path_params["infra_env_id"], request.path_params["host_id"]
    svc = service_of(request)
    raw = await request.body()
    if len(raw) >= CHECK_IN_WORKER:  # its checks would stall every other request
        host = svc.store.peek_host(ie, host_id) or {}
        cluster = svc.store.peek_cluster(host["cluster_id"]) if host.get("cluster_id") else None
        cidrs = tuple(str(c) for c in machine_cidrs(cluster))  # a report's reach is derived over them
        reply, parsed, derived = await svc.reply_workers.check(raw, svc.settings.test_mode, cidrs)
    else:
        reply, derived = decode_json(raw) if raw else {}, None
        parsed = svc.check_reply(reply)
    svc.apply_reply(ie, host_id, reply, parsed, derived)
    return Response(status_code=204)


def _host_of(request: Request) -> dict[str, Any]:
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    return service_of(request).require_host(ie, hid)


async def update_progress(request: Request) -> Response:
    host = _host_of(request)
    body = await read_json(request)
    check_model("host-progress", body)
    stage = body.get("current_stage")
    if not stage:
        raise ServiceRefusal(400, "current_stage is required")
    info = str(body.get("progress_info") or "")
    service_of(request).update_progress(host, stage, info)
    return Response(status_code=200)


async def download_ignition(request: Request) -> Response:
    host = _host_of(request)
    svc = service_of(request)
    cluster = svc.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
    if cluster is None:
        raise ServiceRefusal(404, f"host {host['id']} is not bound to a cluster")
    if cluster.get("status") not in IGNITION_CLUSTER_STATES:
        raise ServiceRefusal(409, f"Cluster {cluster['id']} is in status {cluster.get('status')}: "
                                  "host ignition is available only once the installation started")
    role = "bootstrap" if host.get("bootstrap") else str(host.get("role") or "master")
    token = (svc.store.infra_env_token(host["infra_env_id"]) or "") if svc.settings.auth == "token" else ""
    body = host_ignition(host, cluster, role, service_url=str(request.base_url).rstrip("/"), token=token)
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{role}-{host["id"]}.ign"'})


async def update_logs_progress(request: Request) -> Response:
    host = _host_of(request)
    body = await read_json(request)
    check_model("logs-progress-params", body)
    if "logs_state" not in body:
        raise ServiceRefusal(400, "logs_state is required")
    host["logs_info"] = body["logs_state"]
    if body["logs_state"] == "requested":
        host["logs_started_at"] = _now_iso()
    service_of(request).store.save_host(host)
    return Response(status_code=204)


async def upload_logs(request: Request) -> Response:
    cluster_id = request.path_params["cluster_id"]
    svc = service_of(request)
    q = request.query_params
    logs_type, ie, hid = q.get("logs_type"), q.get("infra_env_id"), q.get("host_id")
    if logs_type not in ("host", "controller"):
        raise ServiceRefusal(400, "logs_type must be host or controller")
    if svc.store.get_cluster(cluster_id) is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    host = None
    if logs_type == "host":
        if not hid or not ie:
            raise ServiceRefusal(400, "host logs need host_id and infra_env_id")
        host = svc.require_host(ie, hid)
        if host.get("cluster_id") != cluster_id:
            raise ServiceRefusal(404, f"host {hid} is not part of cluster {cluster_id}")
    data = await _upfile(request)
    key = f"logs/{cluster_id}/{hid or 'controller'}"
    svc.store.put_blob(key, data)
    if host is not None:
        host["logs_collected_at"] = _now_iso()
        svc.store.save_host(host)
    svc.event(f"Uploaded {logs_type} logs ({len(data)} bytes)", host)
    return Response(status_code=204)


async def _upfile(request: Request) -> bytes:
    """The ``upfile`` part of a multipart/form-data body, parsed with the standard library."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ServiceRefusal(400, "expected a multipart/form-data body with an upfile part")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_LOGS_UPLOAD:
            raise ServiceRefusal(400, f"the logs archive exceeds {MAX_LOGS_UPLOAD} bytes")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + bytes(raw))
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "upfile":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    raise ServiceRefusal(400, "the multipart body has no upfile part")


async def serve_os_image(request: Request) -> Response:
    svc = service_of(request)
    settings = svc.settings
    image = svc.os_images.find(settings.os_image)
    if image is None:
        raise ServiceRefusal(404, "no OS image configured (--os-image or $REFERENCE_SERVICE_OS_IMAGE)")
    rate = settings.os_image_rate
    if rate <= 0:
        return FileResponse(image[0], media_type="application/octet-stream", filename=image[0].name)
    return StreamingResponse(_throttled(image[0], rate), media_type="application/octet-stream",
                             headers={"Content-Length": str(image[0].stat().st_size)})


async def _throttled(path: Path, rate: int) -> AsyncIterator[bytes]:
    """A slow mirror (``$REFERENCE_SERVICE_OS_IMAGE_RATE`` bytes/s), for demos and interrupting an install."""
    chunk = max(4096, rate // 10)
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            yield data
            await asyncio.sleep(len(data) / rate)


ROUTES = [
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts", register_host, methods=["POST"], auth=Auth.AGENT),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions", get_next_steps,
          methods=["GET"], auth=Auth.AGENT),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions", post_step_reply,
          methods=["POST"], auth=Auth.AGENT, max_body=reply_limit),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}/progress", update_progress,
          methods=["PUT"], auth=Auth.AGENT),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}/logs-progress", update_logs_progress,
          methods=["PUT"], auth=Auth.AGENT),
    route(BASE + "/v2/infra-env/{infra_env_id}/hosts/{host_id}/downloads/ignition", download_ignition,
          methods=["GET"], auth=Auth.AGENT),
    route(BASE + "/v2/clusters/{cluster_id}/logs", upload_logs,
          methods=["POST"], auth=Auth.AGENT_OR_ADMIN, max_body=MAX_LOGS_UPLOAD),
    route(OS_IMAGE_PATH, serve_os_image, methods=["GET"], auth=Auth.PUBLIC),
]
