"""What a client downloads besides the ISO, with the real service's semantics: pre-signed URLs (an infra-env's
files, a cluster's files, credentials and logs), the logs the agents and the controller uploaded, and the
hardware requirements a cluster's hosts are judged by (preflight requirements).

A pre-signed URL is this service's own download URL with an ``api_key`` (the spec's ``urlAuth``) that opens
that one GET until it expires (``auth.url_signature``), as the real service's local auth signs infra-env URLs;
under ``--auth none`` the URL has none, as the real service's ``none`` auth. The real service hands out S3
URLs for a cluster's files and answers 400 ("invalid backend") without S3; here the files live in this service,
so the URL is its own, valid for the real one's 10 minutes.

Logs are served as the real service assembles them from its object store: a host's download is a tar holding
the archive its agent uploaded (``<cluster>_<role>_<host>.tar.gz``), the controller's is its upload itself,
and the whole cluster's is a tar of every host's tar, the controller's archive, the cluster's metadata and its
events.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import ServiceRefusal
from reference_service.http import session_routes
from reference_service.http.auth import Auth, url_signature
from reference_service.http.common import public, service_of
from reference_service.http.routing import route
from reference_service.orchestrator import BASE, ReferenceService
from rules import requirements
from rules.documents import is_sno
from rules.network import NETWORK_REQUIREMENTS
from rules.preinstall import DISK_SPEED_THRESHOLD_MS

V2 = BASE + "/v2"
#: How long a pre-signed URL for a cluster's files stays valid (the real service's ``10m``).
CLUSTER_URL_SECONDS = 600
#: How long an infra-env's pre-signed file URL stays valid (the real local auth's image URL lifetime).
INFRA_ENV_URL_SECONDS = 4 * 3600
CLUSTER_FILES = ("bootstrap.ign", "master.ign", "metadata.json", "worker.ign", "install-config.yaml")
CREDENTIAL_FILES = ("kubeadmin-password", "kubeconfig", "kubeconfig-noingress")


# -- pre-signed URLs ------------------------------------------------------------------------------------------
def _presigned(request: Request, path: str, query: dict[str, str], seconds: int) -> Response:
    svc = service_of(request)
    expires = int(time.time()) + seconds
    items = [(k, v) for k, v in query.items() if v]
    if svc.settings.auth == "token":
        items.append(("api_key", url_signature(svc.settings.admin_token, path, items, expires)))
    url = f"{str(request.base_url).rstrip('/')}{path}?{urlencode(items)}"
    when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return JSONResponse({"url": url, "expires_at": when})


def _cluster(svc: ReferenceService, cluster_id: str) -> dict[str, Any]:
    cluster = svc.store.get_cluster(cluster_id)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    return cluster


async def infra_env_presigned(request: Request) -> Response:
    """``GetInfraEnvPresignedFileURL``: the signed URL of ``downloads/files`` for ``discovery.ign`` or
    ``ipxe-script``."""
    q = request.query_params
    name, script = q.get("file_name", ""), q.get("ipxe_script_type")
    if script is not None and name != "ipxe-script":
        raise ServiceRefusal(400, 'ipxe_script_type can be set only for "ipxe-script"')
    if name not in ("discovery.ign", "ipxe-script"):
        raise ServiceRefusal(400, f"file_name in query should be one of [discovery.ign ipxe-script]: {name!r}")
    ie = request.path_params["infra_env_id"]
    if service_of(request).store.get_infra_env(ie) is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    return _presigned(request, f"{V2}/infra-envs/{ie}/downloads/files",
                      {"file_name": name, "ipxe_script_type": script or ""}, INFRA_ENV_URL_SECONDS)


async def cluster_files_presigned(request: Request) -> Response:
    """``V2GetPresignedForClusterFiles``: checked as the download itself would be (400 unknown file, 409 not
    yet), ``manifests`` by ``additional_name``, ``logs`` by type and host."""
    svc = service_of(request)
    cid = request.path_params["cluster_id"]
    q = request.query_params
    name = q.get("file_name", "")
    cluster = _cluster(svc, cid)
    if name == "manifests":
        extra = q.get("additional_name")
        if not extra:
            raise ServiceRefusal(400, "Additional name must be provided for 'manifests' file name, prefaced with "
                                      "folder name, e.g.: openshift/99-openshift-xyz.yaml")
        folder, _, file_name = extra.rpartition("/")
        if extra.startswith("/") or ".." in extra.split("/"):
            raise ServiceRefusal(400, "additional_name must be local to the manifest directory")
        return _presigned(request, f"{V2}/clusters/{cid}/manifests/files",
                          {"folder": folder or "manifests", "file_name": file_name}, CLUSTER_URL_SECONDS)
    if name == "logs":
        logs_type = q.get("logs_type") or ("host" if q.get("host_id") else "")
        _logs(svc, cluster, q.get("host_id"), logs_type)  # refused as the download would be
        return _presigned(request, f"{V2}/clusters/{cid}/logs",
                          {"logs_type": logs_type, "host_id": q.get("host_id") or ""}, CLUSTER_URL_SECONDS)
    if name not in CLUSTER_FILES:
        raise ServiceRefusal(400, f"invalid cluster file {name}")
    if name != "install-config.yaml" or cluster.get("status") in session_routes.CREDENTIAL_STATES:
        session_routes.stored_file(svc, cluster, name)
    return _presigned(request, f"{V2}/clusters/{cid}/downloads/files", {"file_name": name}, CLUSTER_URL_SECONDS)


async def credentials_presigned(request: Request) -> Response:
    """``V2GetPresignedForClusterCredentials``: kubeconfig falls back to kubeconfig-noingress before the
    installation adds the ingress CA, as in the real service."""
    svc = service_of(request)
    cid = request.path_params["cluster_id"]
    name = request.query_params.get("file_name", "")
    if name not in CREDENTIAL_FILES:
        raise ServiceRefusal(400, f"file_name in query should be one of {list(CREDENTIAL_FILES)}: {name!r}")
    cluster = _cluster(svc, cid)
    if name == "kubeconfig" and cluster.get("status") != "installed":
        name = "kubeconfig-noingress"
    session_routes.stored_file(svc, cluster, name)
    return _presigned(request, f"{V2}/clusters/{cid}/downloads/credentials", {"file_name": name},
                      CLUSTER_URL_SECONDS)


# -- logs ---------------------------------------------------------------------------------------------------
def sanitize(name: str) -> str:
    """kennygrant/sanitize's ``Name``, which the real service names log files with."""
    base = name.lower().rstrip("/").rsplit("/", 1)[-1] or "."
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9.\-]", "-", base))


def _host_label(host: dict[str, Any]) -> str:
    inventory = host.get("inventory")
    try:
        hostname = json.loads(inventory).get("hostname", "") if isinstance(inventory, str) and inventory else ""
    except ValueError:
        hostname = ""
    return str(host.get("requested_hostname") or hostname or host["id"])


def _host_tar_name(cluster: dict[str, Any], host: dict[str, Any]) -> str:
    role = "bootstrap" if host.get("bootstrap") else str(host.get("role") or "auto-assign")
    return f"{sanitize(str(cluster.get('name') or ''))}_{role}_{sanitize(_host_label(host))}"


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _host_logs(svc: ReferenceService, cluster: dict[str, Any], host: dict[str, Any]) -> tuple[str, bytes] | None:
    data = svc.store.get_blob(f"logs/{cluster['id']}/{host['id']}")
    if data is None:
        return None
    name = _host_tar_name(cluster, host)
    return f"{name}.tar", _tar([(f"{name}.tar.gz", data)])


def _logs(svc: ReferenceService, cluster: dict[str, Any], host_id: str | None, logs_type: str) -> tuple[str, bytes]:
    """(download file name, content) of the logs asked for, refused as ``getLogFileForDownload`` refuses."""
    cid = cluster["id"]
    if logs_type == "host":
        if not host_id:
            raise ServiceRefusal(400, "Host ID must be provided for downloading host logs")
        host = next((h for h in svc.store.list_hosts(cluster_id=cid) if h["id"] == host_id), None)
        if host is None:
            raise ServiceRefusal(404, f"Host {host_id} not found in cluster {cid}")
        found = _host_logs(svc, cluster, host) if host.get("logs_collected_at") else None
        if found is None:
            raise ServiceRefusal(409, f"Logs for host {host_id} were not found")
        return f"{_host_tar_name(cluster, host)}.tar.gz", found[1]
    if logs_type == "controller":
        data = svc.store.get_blob(f"logs/{cid}/controller")
        if data is None:
            raise ServiceRefusal(409, f"Controller Logs for cluster {cid} were not found")
        return f"{sanitize(str(cluster.get('name') or ''))}_{cid}_controller.tar.gz", data
    if logs_type not in ("", "all"):
        raise ServiceRefusal(400, f"logs_type in query should be one of [host controller all]: {logs_type!r}")
    shown = public({k: v for k, v in cluster.items() if k != "hosts"})
    members = [("cluster_metadata.json", json.dumps({**shown, "pull_secret": "SECRET"}, indent=2).encode()),
               ("cluster_events.json", json.dumps(svc.store.events(cluster_id=cid)).encode())]
    members += [m for h in svc.store.list_hosts(cluster_id=cid) if (m := _host_logs(svc, cluster, h))]
    controller = svc.store.get_blob(f"logs/{cid}/controller")
    if controller is not None:
        members.append(("controller_logs.tar.gz", controller))
    return f"{sanitize(str(cluster.get('name') or ''))}_{cid}.tar", _tar(members)


async def download_logs(request: Request) -> Response:
    """``V2DownloadClusterLogs``: ``logs_type`` host (with ``host_id``), controller, or all (the default)."""
    svc = service_of(request)
    q = request.query_params
    cluster = _cluster(svc, request.path_params["cluster_id"])
    name, data = _logs(svc, cluster, q.get("host_id"), q.get("logs_type") or "")
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- preflight requirements -----------------------------------------------------------------------------------
def _details(req: requirements.Requirements, role: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"cpu_cores": req.cpu_cores, "ram_mib": req.ram_mib, "disk_size_gb": req.disk_size_gb,
                           "installation_disk_speed_threshold_ms": DISK_SPEED_THRESHOLD_MS}
    if role is not None:  # (the single-node requirements carry no network thresholds)
        latency, loss = NETWORK_REQUIREMENTS[role]
        doc["network_latency_threshold_ms"], doc["packet_loss_percentage"] = latency, loss
    return doc


async def preflight_requirements(request: Request) -> Response:
    """``v2GetPreflightRequirements``: the per-role minimums of ``default_hw_requirements.json`` for the
    cluster (single-node masters by the SNO row); no operators are offered here, so none add to them."""
    cluster = _cluster(service_of(request), request.path_params["cluster_id"])
    master = requirements.role_requirements("master", cluster)
    return JSONResponse({"operators": [], "ocp": {
        "master": {"quantitative": _details(master, None if is_sno(cluster) else "master"), "qualitative": []},
        "worker": {"quantitative": _details(requirements.WORKER, "worker"), "qualitative": []}}})


C = V2 + "/clusters/{cluster_id}"
ROUTES = [
    route(V2 + "/infra-envs/{infra_env_id}/downloads/files-presigned", infra_env_presigned, methods=["GET"],
          auth=Auth.ADMIN),
    route(C + "/downloads/files-presigned", cluster_files_presigned, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/downloads/credentials-presigned", credentials_presigned, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/logs", download_logs, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/preflight-requirements", preflight_requirements, methods=["GET"], auth=Auth.ADMIN),
]
