"""The discovery ISO at the real services' paths: the pre-signed URL (assisted-service) and the image itself (the
image service's ``/images/{id}``), plus the infra-env's ``discovery.ign`` (``downloads/files``).

``GET .../downloads/image-url`` answers the spec's ``presigned-url`` (``url``, ``expires_at``); the URL is
``/images/{infra_env_id}?arch=x86_64&type=full-iso&version=...`` on the address the client asked this service
at (a lab's hosts reach the service where its user did), with an ``api_key`` under ``--auth token``: the image
route is public, as the image service's is, and the key, signed with the service's secret, is the credential.
What the ISO carries: ``reference_service.iso``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from common.errors import ServiceRefusal
from reference_service import iso
from reference_service.http.auth import Auth
from reference_service.http.common import service_of
from reference_service.http.routing import route
from reference_service.orchestrator import BASE, ReferenceService

DEFAULT_VERSION = "4.18"


def _infra_env(svc: ReferenceService, infra_env_id: str) -> dict[str, Any]:
    doc = svc.store.get_infra_env(infra_env_id)
    if doc is None:
        raise ServiceRefusal(404, f"Failed to get infra env {infra_env_id}")
    return doc


def _built(svc: ReferenceService) -> iso.DiscoveryIso:
    path = svc.settings.discovery_iso
    if not path:
        raise ServiceRefusal(404, "this service has no discovery ISO (start it with --discovery-iso, made by "
                             "container/iso/build-iso.sh)")
    try:
        return iso.DiscoveryIso.load(Path(path))
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceRefusal(503, f"the discovery ISO {path} is not usable: {exc}") from None


def _service_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _ignition(request: Request, infra_env: dict[str, Any]) -> dict[str, Any]:
    svc = service_of(request)
    if not svc.settings.agent_image:
        raise ServiceRefusal(409, "the discovery image needs the agent image hosts run: start the service with "
                             "--agent-image")
    token = (svc.store.infra_env_token(infra_env["id"]) or "") if svc.settings.auth == "token" else ""
    return iso.ignition(infra_env, service_url=_service_url(request), agent_image=svc.settings.agent_image,
                        token=token, insecure_registries=svc.settings.insecure_registries)


async def image_url(request: Request) -> Response:
    svc = service_of(request)
    ie = _infra_env(svc, request.path_params["infra_env_id"])
    expires = int(time.time()) + iso.URL_LIFETIME
    version = ie.get("openshift_version") or DEFAULT_VERSION
    url = f"{_service_url(request)}/images/{ie['id']}?arch=x86_64&type={ie.get('type') or 'full-iso'}" \
          f"&version={version}"
    if svc.settings.auth == "token":
        url += f"&api_key={iso.sign(svc.settings.admin_token, ie['id'], expires)}"
    when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return JSONResponse({"url": url, "expires_at": when})


async def image(request: Request) -> Response:
    svc = service_of(request)
    infra_env_id = request.path_params["infra_env_id"]
    if svc.settings.auth == "token":
        iso.check_signature(svc.settings.admin_token, infra_env_id, request.query_params.get("api_key", ""))
    ie = _infra_env(svc, infra_env_id)
    kind = request.query_params.get("type", "full-iso")
    if kind != "full-iso":
        raise ServiceRefusal(400, f"image type {kind} is not offered here: full-iso is")
    if request.query_params.get("arch", "x86_64") != "x86_64":
        raise ServiceRefusal(400, "only x86_64 images are offered here")
    built = _built(svc)
    area = built.area(_ignition(request, ie))

    async def body() -> AsyncIterator[bytes]:
        chunks = built.chunks(area)
        while chunk := await asyncio.to_thread(next, chunks, b""):
            yield chunk

    name = f"{ie['id']}-discovery.iso"
    return StreamingResponse(body(), media_type="application/octet-stream",
                             headers={"Content-Length": str(built.size),
                                      "Content-Disposition": f'attachment; filename="{name}"'})


async def download_files(request: Request) -> Response:
    svc = service_of(request)
    ie = _infra_env(svc, request.path_params["infra_env_id"])
    name = request.query_params.get("file_name", "")
    if name != "discovery.ign":
        raise ServiceRefusal(400, f"file_name {name or '(none)'}: this service offers discovery.ign")
    return JSONResponse(_ignition(request, ie), headers={"Content-Disposition": 'attachment; filename="discovery.ign"'})


ROUTES = [
    route(BASE + "/v2/infra-envs/{infra_env_id}/downloads/image-url", image_url, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}/downloads/files", download_files, methods=["GET"], auth=Auth.ADMIN),
    route("/images/{infra_env_id}", image, methods=["GET"], auth=Auth.PUBLIC),
]
