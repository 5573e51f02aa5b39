"""The installation area of the reference service: progress, Ignition, logs, and the native install steps.

A host the core moved to ``installing`` is sent ``write-image`` (the OS image this service serves, its
Ignition endpoint, the installation disk), and once that succeeded ``reboot``. Progress reports follow the
real service's rules (``UpdateInstallProgress``): the stage must belong to the host's role list and may not go
backwards (409 otherwise), the same stage only updates its info, ``Failed`` puts the host in ``error``,
``Done`` makes it ``installed`` -- and so does ``Rebooting`` when the service runs with ``--dry-run-install``,
since no cluster will come up to report ``Done``. Hosts in ``error``/``cancelled`` get ``logs-gather`` and
``stop-installation``; their archives are kept in the store.

The OS image is the file named by ``$REFERENCE_SERVICE_OS_IMAGE`` (raw, xz, gzip or zstd), served at
``/api/reference/os-image`` (throttled to ``$REFERENCE_SERVICE_OS_IMAGE_RATE`` bytes/s if set, like a slow
mirror); its SHA-256 goes into the write-image request.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reference_service import registry
from reference_service.http import (
    check_model,
    public,
    read_json,
    require_agent_auth,
    require_user_auth,
    service_of,
)
from reference_service.lifecycle import BASE, ServiceRefusal
from reference_service.registry import (
    HostView,
    disk_key,
    is_sno,
    reply_handler,
    skipped_formatting,
    step_arguments,
)
from reference_service.store import _now_iso

OS_IMAGE_ENV = "REFERENCE_SERVICE_OS_IMAGE"
OS_IMAGE_PATH = "/api/reference/os-image"
OS_IMAGE_RATE_ENV = "REFERENCE_SERVICE_OS_IMAGE_RATE"
#: Seconds after which a write-image that never answered is handed out again.
WRITE_IMAGE_REISSUE = 3900.0
MAX_LOGS_UPLOAD = 256 << 20

_BOOTSTRAP = ["Starting installation", "Installing", "Writing image to disk", "Copying registry data to disk",
              "Waiting for control plane", "Waiting for bootkube", "Waiting for controller", "Rebooting",
              "Configuring", "Joined", "Done"]
_MASTER = ["Starting installation", "Installing", "Writing image to disk", "Copying registry data to disk",
           "Rebooting", "Configuring", "Joined", "Done"]
_WORKER = ["Starting installation", "Installing", "Writing image to disk", "Waiting for control plane",
           "Rebooting", "Waiting for ignition", "Configuring", "Joined", "Done"]
_SNO = ["Starting installation", "Installing", "Waiting for bootkube", "Writing image to disk",
        "Copying registry data to disk", "Rebooting", "Joined", "Done"]
INSTALLING_STATES = ("installing", "installing-in-progress", "installing-pending-user-action")
IGNITION_CLUSTER_STATES = ("installing", "finalizing", "installed", "error", "adding-hosts", "cancelled",
                           "installing-pending-user-action")

registry.STATE_STEPS["installing"] = ["write-image", "reboot"]
registry.STATE_STEPS["installing-in-progress"] = ["write-image", "reboot"]
registry.STATE_STEPS["error"] = ["logs-gather", "stop-installation"]
registry.STATE_STEPS["cancelled"] = ["logs-gather", "stop-installation"]


def stages_for(host: dict[str, Any], cluster: dict[str, Any] | None) -> list[str]:
    """The stage list of the host's role, as the real service's ``FindMatchingStages``."""
    if host.get("bootstrap"):
        return _SNO if cluster and is_sno(cluster) else _BOOTSTRAP
    if host.get("role") == "worker":
        return _WORKER
    return _MASTER


# -- the OS image ----------------------------------------------------------------------------------------------
_digests: dict[tuple[str, int, int], str] = {}


def os_image() -> tuple[Path, str] | None:
    """The configured image and its SHA-256 (computed once per file version), or None."""
    name = os.environ.get(OS_IMAGE_ENV)
    if not name:
        return None
    path = Path(name)
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(4 << 20):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return path, _digests[key]


async def serve_os_image(request: Request) -> Response:
    image = os_image()
    if image is None:
        raise ServiceRefusal(404, f"no OS image configured (set ${OS_IMAGE_ENV})")
    rate = int(os.environ.get(OS_IMAGE_RATE_ENV) or 0)
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


# -- steps -------------------------------------------------------------------------------------------------------
def _save(view: HostView) -> None:
    if view.service is not None:
        view.service.store.save_host(view.host)


def format_disk_paths(view: HostView) -> list[str]:
    """disks_to_be_formatted less skip_formatting_disks and the installation disk, as paths for the agent."""
    host = view.host
    skip = set(skipped_formatting(host))
    wanted = [d for d in str(host.get("disks_to_be_formatted") or "").split(",")
              if d and d not in skip and d != host.get("installation_disk_id")]
    disks = {disk_key(d): d for d in (view.inventory or {}).get("disks") or []}
    return [str(disks[d]["path"]) for d in wanted if d in disks and str(disks[d].get("path", "")).startswith("/dev/")]


@step_arguments("write-image")
def write_image_args(view: HostView) -> list[str] | None:
    host = view.host
    if host.get("_image_written"):
        return None
    issued = float(host.get("_write_image_issued_at") or 0)
    if issued and time.time() - issued < WRITE_IMAGE_REISSUE:
        return None
    target = host.get("installation_disk_path")
    image = os_image()
    if not target or image is None:
        return None
    request: dict[str, Any] = {
        "image_url": OS_IMAGE_PATH, "target_device": target, "image_sha256": image[1],
        "ignition_from_service": True, "infra_env_id": host["infra_env_id"], "host_id": host["id"],
        "role": "bootstrap" if host.get("bootstrap") else view.role,
    }
    disk_id = host.get("installation_disk_id")
    if isinstance(disk_id, str) and disk_id.startswith("/dev/"):
        request["disk_id"] = disk_id
    formats = format_disk_paths(view)
    if formats:
        request["format_disks"] = formats
    host["_write_image_issued_at"] = time.time()
    _save(view)
    return [json.dumps(request)]


@reply_handler("write-image")
def write_image_done(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    host = view.host
    host.pop("_write_image_issued_at", None)
    if int(reply.get("exit_code") or 0) == 0:
        host["_image_written"] = True
        return
    if host.get("status") in INSTALLING_STATES and view.service is not None:
        view.service.set_status(host, "error", f"Failed - {reply.get('error') or 'writing the image failed'}")


@step_arguments("reboot")
def reboot_args(view: HostView) -> list[str] | None:
    host = view.host
    if not host.get("_image_written") or host.get("_reboot_issued"):
        return None
    host["_reboot_issued"] = True
    _save(view)
    return [json.dumps({"delay_seconds": 0, "reason": "Installation completed, server is going to reboot.",
                        "infra_env_id": host["infra_env_id"], "host_id": host["id"]})]


@reply_handler("reboot")
def reboot_done(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    host = view.host
    if int(reply.get("exit_code") or 0) != 0 and host.get("status") in INSTALLING_STATES and view.service:
        view.service.set_status(host, "error", f"Failed - the reboot failed: {reply.get('error', '')}")


@step_arguments("logs-gather")
def logs_gather_args(view: HostView) -> list[str] | None:
    host = view.host
    if not host.get("cluster_id") or host.get("logs_info") in ("completed", "collecting", "timeout"):
        return None
    masters = []
    for other in view.others:
        if other.get("role") == "master":
            for nic in (registry.parse_json_field(other, "inventory") or {}).get("interfaces", []):
                masters += [a.split("/")[0] for a in nic.get("ipv4_addresses", [])]
    return [json.dumps({"cluster_id": host["cluster_id"], "infra_env_id": host["infra_env_id"], "host_id": host["id"],
                        "bootstrap": bool(host.get("bootstrap")), "installer_gather": False,
                        "master_ips": masters})]


@step_arguments("stop-installation")
def stop_installation_args(view: HostView) -> list[str]:
    return []


# -- agent-facing routes -------------------------------------------------------------------------------------------
def _host_of(request: Request) -> dict[str, Any]:
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    require_agent_auth(request, ie)
    return service_of(request).require_host(ie, hid)


async def update_progress(request: Request) -> Response:
    host = _host_of(request)
    body = await read_json(request)
    check_model("host-progress", body)
    stage = body.get("current_stage")
    if not stage:
        raise ServiceRefusal(400, "current_stage is required")
    info = str(body.get("progress_info") or "")
    svc = service_of(request)
    apply_progress(svc, host, stage, info)
    return Response(status_code=200)


def apply_progress(svc: Any, host: dict[str, Any], stage: str, info: str) -> None:
    """``UpdateInstallProgress`` of the real service, rule for rule; raises ServiceRefusal on 400/409."""
    if not host.get("cluster_id"):
        raise ServiceRefusal(400, f"Host {host['id']} is not bound to any cluster")
    progress = dict(host.get("progress") or {})
    now = _now_iso()
    if progress.get("current_stage") == stage:
        if progress.get("progress_info", "") != info:
            progress["progress_info"], progress["stage_updated_at"] = info, now
            host["progress"] = progress
            svc.refresh_host(host)
        return
    if host.get("status") not in INSTALLING_STATES:
        raise ServiceRefusal(409, f"Can't set progress <{stage}> to host in status <{host.get('status')}>")
    cluster = svc.store.get_cluster(host["cluster_id"])
    stages = stages_for(host, cluster)
    if stage == "Failed":
        progress.update(current_stage=stage, progress_info=info, stage_started_at=now, stage_updated_at=now)
        host["progress"] = progress
        svc.set_status(host, "error", f"Failed - {info}" if info else "Failed")
        svc.refresh_host(host)
        return
    current = progress.get("current_stage")
    if stage not in stages:
        raise ServiceRefusal(409, f"Stages list doesn't contain stage {stage} for host {host['id']} "
                                  f"with role {host.get('role')}")
    if current in stages and stages.index(stage) < stages.index(current):
        raise ServiceRefusal(409, f"Can't assign lower stage \"{stage}\" after host has been in stage \"{current}\"")
    progress.update(current_stage=stage, progress_info=info, stage_started_at=now, stage_updated_at=now,
                    installation_percentage=int((stages.index(stage) + 1) * 100 / len(stages)))
    host["progress"] = progress
    host["progress_stages"] = stages
    day2 = host.get("kind") == "AddToExistingClusterHost"
    if day2 and stage in ("Done", "Rebooting"):  # no controller reports Done for a day-2 host
        svc.set_status(host, "added-to-existing-cluster", "Host has rebooted and no further updates will be posted")
    elif stage == "Done" or (stage == "Rebooting" and svc.settings.dry_run_install):
        svc.set_status(host, "installed", "Done")
    else:
        svc.set_status(host, "installing-in-progress", stage)
    svc.event(f"Host {host['id']}: reached installation stage {stage}{': ' + info if info else ''}", host)
    svc.refresh_host(host)


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
    return Response(host_ignition(host, cluster, role), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{role}-{host["id"]}.ign"'})


def host_ignition(host: dict[str, Any], cluster: dict[str, Any], role: str) -> bytes:
    """A placeholder Ignition v3.2 config naming the host (the real one comes from the OpenShift installer)."""
    hostname = host.get("requested_hostname") or (registry.parse_json_field(host, "inventory") or {}).get(
        "hostname", "")
    files = [{"path": "/etc/assisted/host", "mode": 0o644, "overwrite": True,
              "contents": {"source": "data:," + f"{host['id']}%20{role}%20{cluster['id']}"}}]
    if hostname:
        files.append({"path": "/etc/hostname", "mode": 0o644, "overwrite": True,
                      "contents": {"source": f"data:,{hostname}"}})
    doc = {"ignition": {"version": "3.2.0"}, "storage": {"files": files}}
    return json.dumps(doc, separators=(",", ":")).encode()


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
        require_agent_auth(request, ie)
        host = svc.require_host(ie, hid)
        if host.get("cluster_id") != cluster_id:
            raise ServiceRefusal(404, f"host {hid} is not part of cluster {cluster_id}")
    elif svc.settings.auth != "none" and not request.headers.get("x-secret-key"):
        require_user_auth(request)
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


# -- reference extras ------------------------------------------------------------------------------------------------
async def host_logs(request: Request) -> Response:
    require_user_auth(request)
    params = request.path_params
    data = service_of(request).store.get_blob(f"logs/{params['cluster_id']}/{params['host_id']}")
    if data is None:
        raise ServiceRefusal(404, "no logs uploaded for this host")
    return Response(data, media_type="application/gzip")


async def set_installation_disk(request: Request) -> Response:
    """Choose a host's installation disk by path (what the hardware area derives from the inventory)."""
    require_user_auth(request)
    body = await read_json(request)
    path = body.get("path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path.startswith("/dev/"):
        raise ServiceRefusal(400, "path must be a device path under /dev/")
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    host["installation_disk_path"] = path
    host["installation_disk_id"] = body.get("id") or path
    return JSONResponse(public(svc.refresh_host(host)))


registry.ROUTES.extend([
    Route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}/progress", update_progress, methods=["PUT"]),
    Route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}/logs-progress", update_logs_progress,
          methods=["PUT"]),
    Route(BASE + "/v2/infra-env/{infra_env_id}/hosts/{host_id}/downloads/ignition", download_ignition,
          methods=["GET"]),
    Route(BASE + "/v2/clusters/{cluster_id}/logs", upload_logs, methods=["POST"]),
    Route(OS_IMAGE_PATH, serve_os_image, methods=["GET"]),
    Route("/api/reference/clusters/{cluster_id}/hosts/{host_id}/logs", host_logs, methods=["GET"]),
    Route("/api/reference/infra-envs/{infra_env_id}/hosts/{host_id}/installation-disk", set_installation_disk,
          methods=["PUT"]),
])
