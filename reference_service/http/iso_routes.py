"""The discovery ISO at the real services' paths: the pre-signed URL (assisted-service) and the image itself (the
image service's ``/images/{id}``, full or minimal), plus the infra-env's ``discovery.ign`` and ``ipxe-script``
(``downloads/files``), ``downloads/minimal-initrd``, and the image service's boot artifacts (``/boot-artifacts/
kernel``, ``/boot-artifacts/rootfs``, ``/images/{id}/pxe-initrd``).

``GET .../downloads/image-url`` answers the spec's ``presigned-url`` (``url``, ``expires_at``); the URL is
``/images/{infra_env_id}?arch=x86_64&type=full-iso&version=...`` on the address the client asked this service
at (a lab's hosts reach the service where its user did), with an ``api_key`` under ``--auth token``: the image
route is public, as the image service's is, and the key, signed with the service's secret, is the credential.
What the ISO carries: ``reference_service.iso``; the minimal ISO and the boot artifacts: ``reference_service.iso_boot``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from common.errors import ServiceRefusal
from reference_service import iso, iso_boot
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


def _boot_files(svc: ReferenceService) -> iso_boot.BootFiles:
    built = _built(svc)
    try:
        return iso_boot.BootFiles.load(built.path)
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceRefusal(404, f"the discovery ISO {built.path} has no minimal ISO or boot artifacts: {exc}") \
            from None


def _check_key(request: Request, infra_env_id: str) -> None:
    svc = service_of(request)
    if svc.settings.auth == "token":
        iso.check_signature(svc.settings.admin_token, infra_env_id, request.query_params.get("api_key", ""))


def _version(request: Request) -> str:
    if request.query_params.get("arch", "x86_64") != "x86_64":
        raise ServiceRefusal(400, "only x86_64 images are offered here")
    return request.query_params.get("version") or DEFAULT_VERSION


def _artifact_urls(request: Request, ie: dict[str, Any]) -> dict[str, str]:
    """The image service's URLs of the three boot artifacts, as the ipxe-script and the minimal ISO name them."""
    svc, base = service_of(request), _service_url(request)
    query = f"arch=x86_64&version={ie.get('openshift_version') or DEFAULT_VERSION}"
    initrd = f"{base}/images/{ie['id']}/pxe-initrd?{query}"
    if svc.settings.auth == "token":
        initrd = f"{base}/images/{ie['id']}/pxe-initrd?api_key=" \
                 f"{iso.sign(svc.settings.admin_token, ie['id'], int(time.time()) + iso.URL_LIFETIME)}&{query}"
    return {"kernel_url": f"{base}/boot-artifacts/kernel?{query}", "initrd_url": initrd,
            "rootfs_url": f"{base}/boot-artifacts/rootfs?{query}"}


def _stream(path: Path, patches: list[tuple[int, bytes]], name: str, tail: bytes = b"") -> StreamingResponse:
    """A file's bytes with ``patches`` written over them, then ``tail``: 1 MiB reads in a worker thread."""
    async def body() -> AsyncIterator[bytes]:
        chunks = iso.patched_chunks(path, patches)
        while chunk := await asyncio.to_thread(next, chunks, b""):
            yield chunk
        if tail:
            yield tail

    return StreamingResponse(body(), media_type="application/octet-stream",
                             headers={"Content-Length": str(path.stat().st_size + len(tail)),
                                      "Content-Disposition": f'attachment; filename="{name}"'})


async def image(request: Request) -> Response:
    svc = service_of(request)
    infra_env_id = request.path_params["infra_env_id"]
    _check_key(request, infra_env_id)
    ie = _infra_env(svc, infra_env_id)
    kind = request.query_params.get("type", "full-iso")
    if kind not in ("full-iso", "minimal-iso"):
        raise ServiceRefusal(400, f"image type {kind} is not offered here: full-iso and minimal-iso are")
    _version(request)
    built = _built(svc)
    if kind == "minimal-iso":
        boot = _boot_files(svc)
        patches = [(boot.area_offset, boot.area(_ignition(request, ie))),
                   (boot.kargs_offset, boot.kargs(_artifact_urls(request, ie)["rootfs_url"]))]
        return _stream(boot.minimal_iso, patches, f"{ie['id']}-discovery-minimal.iso")
    return _stream(built.path, [(built.area_offset, built.area(_ignition(request, ie)))], f"{ie['id']}-discovery.iso")


async def pxe_initrd(request: Request) -> Response:
    """The initrd with the infra-env's Ignition appended as a cpio (the image service's pxe-initrd)."""
    svc = service_of(request)
    infra_env_id = request.path_params["infra_env_id"]
    _check_key(request, infra_env_id)
    ie = _infra_env(svc, infra_env_id)
    _version(request)
    boot = _boot_files(svc)
    size = boot.initrd.stat().st_size
    tail = bytes(-size % 4) + iso_boot.ignition_cpio(_ignition(request, ie))
    return _stream(boot.initrd, [], "initrd", tail)


async def boot_artifact(request: Request) -> Response:
    """``/boot-artifacts/kernel`` and ``/boot-artifacts/rootfs``: one file per version, public as the image
    service's are (they carry nothing of any infra-env)."""
    name = request.path_params["artifact"]
    if name not in ("kernel", "rootfs"):
        raise ServiceRefusal(404, f"malformed download path: /boot-artifacts/{name}")
    if not request.query_params.get("version"):
        raise ServiceRefusal(400, "'version' parameter required")
    _version(request)
    boot = _boot_files(service_of(request))
    path = boot.kernel if name == "kernel" else boot.rootfs
    return _stream(path, [], "vmlinuz" if name == "kernel" else "rootfs.img")


async def minimal_initrd(request: Request) -> Response:
    """The minimal ISO's extra initrd: the static network configs as a cpio, or 204 when there are none (as the
    real service answers)."""
    svc = service_of(request)
    ie = _infra_env(svc, request.path_params["infra_env_id"])
    files = [f for f in iso.ignition(ie, service_url="", agent_image="", token="")["storage"]["files"]
             if f["path"].startswith("/etc/assisted/network/")]
    if not files:
        return Response(status_code=204)
    return Response(iso_boot.network_cpio(files), media_type="application/octet-stream")


async def download_files(request: Request) -> Response:
    svc = service_of(request)
    ie = _infra_env(svc, request.path_params["infra_env_id"])
    name = request.query_params.get("file_name", "")
    if name == "ipxe-script":
        kind = request.query_params.get("ipxe_script_type") or "discovery-image-always"
        if kind != "discovery-image-always":
            raise ServiceRefusal(400, f"ipxe_script_type {kind}: this service offers discovery-image-always")
        return PlainTextResponse(iso_boot.ipxe_script(**_artifact_urls(request, ie)),
                                 media_type="application/octet-stream",
                                 headers={"Content-Disposition": 'attachment; filename="ipxe-script"'})
    if name != "discovery.ign":
        raise ServiceRefusal(400, f"file_name {name or '(none)'}: this service offers discovery.ign and ipxe-script")
    return JSONResponse(_ignition(request, ie), headers={"Content-Disposition": 'attachment; filename="discovery.ign"'})


ROUTES = [
    route(BASE + "/v2/infra-envs/{infra_env_id}/downloads/image-url", image_url, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}/downloads/files", download_files, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}/downloads/minimal-initrd", minimal_initrd, methods=["GET"],
          auth=Auth.ADMIN),
    route("/images/{infra_env_id}", image, methods=["GET"], auth=Auth.PUBLIC),
    route("/images/{infra_env_id}/pxe-initrd", pxe_initrd, methods=["GET"], auth=Auth.PUBLIC),
    route("/boot-artifacts/{artifact}", boot_artifact, methods=["GET"], auth=Auth.PUBLIC),
]
