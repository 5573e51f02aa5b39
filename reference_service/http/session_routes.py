"""The rest of a client session, with the real service's semantics: the catalogue, import (day 2), a cluster's
settings (install-config, ignored validations, UI settings, manifests), its end (credentials, files, cancel,
reset, delete), infra-env update and delete, installer arguments. Others answer 501 (``unimplemented``)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common import __version__
from common.errors import ServiceRefusal
from reference_service import artifacts
from reference_service.http import host_actions
from reference_service.http.auth import Auth
from reference_service.http.common import check_model, read_json, service_of
from reference_service.http.routing import route
from reference_service.http.user_routes import _cluster_view, host_view
from reference_service.orchestrator import BASE, ReferenceService
from reference_service.store.database import _now_iso
from rules import cluster_validations, user_checks
from rules.presentation import infra_env_out

V2 = BASE + "/v2"
#: Cluster statuses in which the installation can be cancelled, and reset (the real ResetCluster sources).
CANCELLABLE = ("preparing-for-installation", "installing", "installing-pending-user-action", "finalizing", "error")
RESETTABLE = (*CANCELLABLE, "cancelled")
#: Which files exist from which cluster status (the real service: kubeconfig-noingress once installing).
CREDENTIAL_STATES = ("installing", "installing-pending-user-action", "finalizing", "installed")
MANIFEST_FOLDERS = ("manifests", "openshift")


def _cluster(svc: ReferenceService, request: Request) -> dict[str, Any]:
    cid = request.path_params["cluster_id"]
    cluster = svc.store.get_cluster(cid)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cid} not found")
    return cluster


# -- the catalogue ------------------------------------------------------------------------------------------
async def openshift_versions(request: Request) -> Response:
    newest = user_checks.OPENSHIFT_VERSIONS[-1]
    return JSONResponse({v: {"display_name": f"{v}.0", "support_level": "production", "default": v == newest,
                             "cpu_architectures": ["x86_64"]} for v in user_checks.OPENSHIFT_VERSIONS})


async def component_versions(request: Request) -> Response:
    return JSONResponse({"versions": {"assisted-installer-service": f"reference-{__version__}",
                                      "discovery-agent": f"assisted-agent-{__version__}"},
                         "release_tag": f"reference-{__version__}"})


def _constant(doc: Any) -> Any:
    async def answer(request: Request) -> Response:
        return JSONResponse(doc)

    return answer


empty_list = _constant([])
architectures = _constant({"architectures": {"x86_64": "supported", "arm64": "unavailable", "ppc64le": "unavailable",
                                             "s390x": "unavailable", "multi": "unavailable"}})
features = _constant({"features": (FEATURES := {"SNO": "supported", "USER_MANAGED_NETWORKING": "supported"})})


async def default_config(request: Request) -> Response:
    return JSONResponse({
        "cluster_network_cidr": cluster_validations.DEFAULT_CLUSTER_NETWORK,
        "cluster_network_host_prefix": cluster_validations.DEFAULT_HOST_PREFIX,
        "service_network_cidr": cluster_validations.DEFAULT_SERVICE_NETWORK, "ntp_source": "",
        "inactive_deletion_hours": 0,
        "cluster_networks_ipv4": [{"cidr": cluster_validations.DEFAULT_CLUSTER_NETWORK,
                                   "host_prefix": cluster_validations.DEFAULT_HOST_PREFIX}],
        "service_networks_ipv4": [{"cidr": cluster_validations.DEFAULT_SERVICE_NETWORK}],
        "cluster_networks_dualstack": [], "service_networks_dualstack": [],
    })


# -- a cluster's settings -----------------------------------------------------------------------------------
async def get_install_config(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    return JSONResponse(artifacts.install_config(cluster, svc.store.list_hosts(cluster_id=cluster["id"])))


async def update_install_config(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    user_checks.check_update(cluster, {}, [])
    body = await read_json(request)
    try:
        overrides = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        overrides = None
    if not isinstance(overrides, dict):
        raise ServiceRefusal(400, "install config overrides must be a JSON object in a string")
    cluster["install_config_overrides"] = json.dumps(overrides)
    svc.store.save_cluster(cluster)
    return Response(status_code=201)


def _setting(key: str, default: Any) -> tuple[Any, Any]:
    async def get(request: Request) -> Response:
        cluster = _cluster(service_of(request), request)
        return JSONResponse(cluster.get(key, default))

    async def put(request: Request) -> Response:
        svc = service_of(request)
        cluster = _cluster(svc, request)
        cluster[key] = await read_json(request)
        svc.store.save_cluster(cluster)
        return JSONResponse(cluster[key], status_code=201 if key == "_ignored_validations" else 200)

    return get, put


get_ignored, put_ignored = _setting("_ignored_validations", {"host-validation-ids": "[]",
                                                             "cluster-validation-ids": "[]"})
get_ui_settings, put_ui_settings = _setting("_ui_settings", "")


# -- manifests ----------------------------------------------------------------------------------------------
def _manifests(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(cluster.get("_manifests") or {})


async def list_manifests(request: Request) -> Response:
    cluster = _cluster(service_of(request), request)
    return JSONResponse([{k: v for k, v in m.items() if k != "content"} for m in _manifests(cluster).values()])


async def create_manifest(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    user_checks.check_update(cluster, {}, [])
    body = await read_json(request)
    folder, name = str(body.get("folder") or "manifests"), str(body.get("file_name") or "")
    if folder not in MANIFEST_FOLDERS:
        raise ServiceRefusal(400, f"Supplied folder {folder} is not one of {list(MANIFEST_FOLDERS)}")
    if not name.endswith((".yaml", ".yml", ".json")) or "/" in name:
        raise ServiceRefusal(400, f"Manifest {name} must have a yaml, yml or json extension and no directory")
    try:
        base64.b64decode(str(body.get("content") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise ServiceRefusal(400, f"failed to base64-decode cluster manifest content for {folder}/{name}") from None
    manifests = _manifests(cluster)
    manifests[f"{folder}/{name}"] = {"folder": folder, "file_name": name, "manifest_source": "user",
                                     "content": body["content"]}
    cluster["_manifests"] = manifests
    svc.store.save_cluster(cluster)
    return JSONResponse({"folder": folder, "file_name": name, "manifest_source": "user"}, status_code=201)


async def update_manifest(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    body = await read_json(request)
    old = f"{body.get('folder') or 'manifests'}/{body.get('file_name')}"
    manifests = _manifests(cluster)
    if old not in manifests:
        raise ServiceRefusal(404, f"Cluster manifest {old} not found")
    entry = manifests.pop(old)
    entry["folder"] = body.get("updated_folder") or entry["folder"]
    entry["file_name"] = body.get("updated_file_name") or entry["file_name"]
    if body.get("updated_content"):
        entry["content"] = body["updated_content"]
    manifests[f"{entry['folder']}/{entry['file_name']}"] = entry
    cluster["_manifests"] = manifests
    svc.store.save_cluster(cluster)
    return JSONResponse({k: v for k, v in entry.items() if k != "content"})


async def delete_manifest(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    q = request.query_params
    key = f"{q.get('folder') or 'manifests'}/{q.get('file_name')}"
    manifests = _manifests(cluster)
    if manifests.pop(key, None) is None:
        raise ServiceRefusal(404, f"Cluster manifest {key} not found")
    cluster["_manifests"] = manifests
    svc.store.save_cluster(cluster)
    return Response(status_code=200)


async def download_manifest(request: Request) -> Response:
    cluster = _cluster(service_of(request), request)
    q = request.query_params
    key = f"{q.get('folder') or 'manifests'}/{q.get('file_name')}"
    entry = _manifests(cluster).get(key)
    if entry is None:
        raise ServiceRefusal(404, f"Cluster manifest {key} not found")
    return Response(base64.b64decode(entry["content"]), media_type="application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename={entry['file_name']}"})


# -- the end of a cluster -----------------------------------------------------------------------------------
def stored_file(svc: ReferenceService, cluster: dict[str, Any], name: str) -> str:
    if cluster.get("status") not in CREDENTIAL_STATES or (name == "kubeconfig" and cluster["status"] != "installed"):
        raise ServiceRefusal(409, f"Cluster {cluster['id']} is in {cluster.get('status')} state, {name} can be "
                                  "downloaded only once it is installed (kubeconfig-noingress: once installing)")
    raw = svc.store.get_blob(artifacts.key(cluster["id"]))
    files = json.loads(raw) if raw else {}
    if name not in files:
        raise ServiceRefusal(400, f"{name} is not one of the cluster's files: {sorted(files)}")
    return str(files[name])


async def download_file(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    name = request.query_params.get("file_name", "")
    if name == "install-config.yaml" and cluster.get("status") not in CREDENTIAL_STATES:
        text = artifacts.install_config(cluster, svc.store.list_hosts(cluster_id=cluster["id"]))
    else:
        text = stored_file(svc, cluster, name)
    return Response(text, media_type="application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


async def credentials(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    password = stored_file(svc, cluster, "kubeadmin-password")
    console = f"https://console-openshift-console.apps.{cluster.get('name')}.{cluster.get('base_dns_domain')}"
    return JSONResponse({"username": "kubeadmin", "password": password, "console_url": console})


async def monitored_operators(request: Request) -> Response:
    cluster = _cluster(service_of(request), request)
    done = "available" if cluster.get("status") == "installed" else ""
    return JSONResponse([{"name": name, "operator_type": "builtin", "cluster_id": cluster["id"],
                          "status": done, "timeout_seconds": 3600} for name in ("console", "cvo")])


async def cancel(request: Request) -> Response:
    """The installation stops: the cluster and its hosts go to cancelled (409 where it cannot)."""
    svc = service_of(request)
    cluster = _cluster(svc, request)
    if cluster.get("status") not in CANCELLABLE:
        raise ServiceRefusal(409, f"Cluster {cluster['id']} is in {cluster.get('status')} state, it can be cancelled "
                                  f"only in one of {list(CANCELLABLE)}")
    for host in svc.store.list_hosts(cluster_id=cluster["id"]):
        svc.set_status(host, "cancelled", "Installation cancelled by user")
        svc.store.save_host(host)
    cluster["status"], cluster["status_info"] = "cancelled", "Canceled cluster installation"
    svc.store.save_cluster(cluster)
    svc.store.add_event("Canceled cluster installation", cluster_id=cluster["id"])
    return _cluster_view(svc, cluster["id"], status_code=202)


async def reset(request: Request) -> Response:
    """Back to before the install: the cluster insufficient, its hosts to boot discovery again (real ResetHost)."""
    svc = service_of(request)
    cluster = _cluster(svc, request)
    if cluster.get("status") not in RESETTABLE:
        raise ServiceRefusal(409, f"Cluster {cluster['id']} is in {cluster.get('status')} state, it can be reset "
                                  f"only in one of {list(RESETTABLE)}")
    cluster["status"], cluster["status_info"] = "insufficient", "cluster was reset by user"
    svc.store.save_cluster(cluster)
    for host in svc.store.list_hosts(cluster_id=cluster["id"]):
        for name in ("_image_written", "_reboot_issued", "_write_image_issued_at", "progress", "progress_stages"):
            host.pop(name, None)
        svc.set_status(host, *host_actions.RESETTING)
        svc.store.save_host(host)
    svc.store.add_event("Reset cluster installation", cluster_id=cluster["id"])
    return _cluster_view(svc, cluster["id"], status_code=202)


async def delete_cluster(request: Request) -> Response:
    svc = service_of(request)
    cluster = _cluster(svc, request)
    if cluster.get("status") in ("preparing-for-installation", "installing", "finalizing"):
        raise ServiceRefusal(409, f"Cluster {cluster['id']} is installing; cancel the installation first")
    for host in svc.store.list_hosts(cluster_id=cluster["id"]):
        svc.store.delete_host(host["infra_env_id"], host["id"])
    svc.store.delete_cluster(cluster["id"])
    svc.store.add_event(f"Deregistered cluster: {cluster['id']}", cluster_id=cluster["id"])
    return Response(status_code=204)


async def import_cluster(request: Request) -> Response:
    """``v2ImportCluster``: a cluster that exists already, to add hosts to (day 2). Its name and base domain
    come from its API's name (``api.<name>.<domain>``) when it has that form, as in the real service."""
    body = await read_json(request)
    check_model("import-cluster-params", body)
    svc = service_of(request)
    cid, now = str(uuid.uuid4()), _now_iso()
    api_name = str(body["api_vip_dnsname"])
    name, domain = str(body["name"]), ""
    parts = api_name.split(".")
    if len(parts) > 2 and parts[0] == "api":
        name, domain = parts[1], ".".join(parts[2:])
    cluster = {"kind": "AddHostsCluster", "id": cid, "href": f"{V2}/clusters/{cid}", "name": name,
               "openshift_version": body.get("openshift_version") or "",
               "openshift_cluster_id": body["openshift_cluster_id"], "api_vip_dnsname": api_name,
               "base_dns_domain": domain, "imported": True, "platform": {"type": "baremetal"},
               "status": "adding-hosts", "status_info": "cluster is adding hosts to existing OCP cluster",
               "created_at": now, "updated_at": now, "image_info": {}, "hosts": [], "pull_secret_set": False,
               "high_availability_mode": "Full", "control_plane_count": 3, "user_managed_networking": False}
    svc.store.save_cluster(cluster)
    svc.store.add_event(f"Successfully imported cluster {name} to add hosts to it", cluster_id=cid)
    return _cluster_view(svc, cid, status_code=201)


# -- infra-envs and hosts -----------------------------------------------------------------------------------
async def update_infra_env(request: Request) -> Response:
    svc = service_of(request)
    ie = request.path_params["infra_env_id"]
    doc = svc.store.get_infra_env(ie)
    if doc is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    body = await read_json(request)
    check_model("infra-env-update-params", body)
    if "pull_secret" in body:
        problem = user_checks.pull_secret_problem(body["pull_secret"])
        if problem:
            raise ServiceRefusal(400, problem)
        doc["pull_secret_set"] = True
    for key, value in body.items():
        if key == "pull_secret" or value is None:
            continue
        doc["type" if key == "image_type" else key] = value
    if not isinstance(doc.get("static_network_config"), (str, type(None))):
        doc["static_network_config"] = json.dumps(doc["static_network_config"])
    svc.store.save_infra_env(doc)
    return JSONResponse(infra_env_out({k: v for k, v in doc.items() if not k.startswith("_")}), status_code=201)


async def delete_infra_env(request: Request) -> Response:
    svc = service_of(request)
    ie = request.path_params["infra_env_id"]
    if svc.store.get_infra_env(ie) is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    if svc.store.list_hosts(infra_env_id=ie):
        raise ServiceRefusal(409, f"failed to deregister infraEnv {ie}, {len(svc.store.list_hosts(infra_env_id=ie))} "
                                  "hosts are still associated")
    svc.store.delete_infra_env(ie)
    return Response(status_code=204)


async def installer_args(request: Request) -> Response:
    """``--append-karg``-style arguments for coreos-installer, checked as the real service checks them."""
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    body = await read_json(request)
    args = body.get("args") if isinstance(body, dict) else None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ServiceRefusal(400, "installer args must be a list of strings")
    allowed = ("--append-karg", "--delete-karg", "-n", "--copy-network", "--network-dir", "--save-partlabel",
               "--save-partindex", "--image-url", "--image-file")
    for arg in args:
        if arg.startswith("-") and arg not in allowed:
            raise ServiceRefusal(400, f"found unexpected flag {arg} for installer - allowed flags are {list(allowed)}")
    host["installer_args"] = json.dumps(args)
    svc.store.save_host(host)
    return JSONResponse(host_view(svc, host), status_code=201)


C = V2 + "/clusters/{cluster_id}"
ROUTES = [
    route(V2 + "/openshift-versions", openshift_versions, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/component-versions", component_versions, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/release-sources", empty_list, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/supported-operators", empty_list, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/operators/bundles", empty_list, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/domains", empty_list, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/support-levels/architectures", architectures, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/support-levels/features", features, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/clusters/default-config", default_config, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/clusters/import", import_cluster, methods=["POST"], auth=Auth.ADMIN),
    route(C, delete_cluster, methods=["DELETE"], auth=Auth.ADMIN),
    route(C + "/install-config", get_install_config, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/install-config", update_install_config, methods=["PATCH"], auth=Auth.ADMIN),
    route(C + "/ignored-validations", get_ignored, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/ignored-validations", put_ignored, methods=["PUT"], auth=Auth.ADMIN),
    route(C + "/ui-settings", get_ui_settings, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/ui-settings", put_ui_settings, methods=["PUT"], auth=Auth.ADMIN),
    route(C + "/manifests", list_manifests, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/manifests", create_manifest, methods=["POST"], auth=Auth.ADMIN),
    route(C + "/manifests", update_manifest, methods=["PATCH"], auth=Auth.ADMIN),
    route(C + "/manifests", delete_manifest, methods=["DELETE"], auth=Auth.ADMIN),
    route(C + "/manifests/files", download_manifest, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/monitored-operators", monitored_operators, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/credentials", credentials, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/downloads/credentials", download_file, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/downloads/files", download_file, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/actions/cancel", cancel, methods=["POST"], auth=Auth.ADMIN),
    route(C + "/actions/reset", reset, methods=["POST"], auth=Auth.ADMIN),
    route(V2 + "/infra-envs/{infra_env_id}", update_infra_env, methods=["PATCH"], auth=Auth.ADMIN),
    route(V2 + "/infra-envs/{infra_env_id}", delete_infra_env, methods=["DELETE"], auth=Auth.ADMIN),
    route(V2 + "/infra-envs/{infra_env_id}/hosts/{host_id}/installer-args", installer_args, methods=["PATCH"],
          auth=Auth.ADMIN),
]
