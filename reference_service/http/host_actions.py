"""A host's actions, with the real service's semantics (its ``BindHost``, ``UnbindHost``, ``V2ResetHost``,
``V2InstallHost``, ``V2GetHostIgnition``, ``V2UpdateHostIgnition``): statuses, refusals and events as it has them.

Bind and unbind move a host of a late-binding infra-env (one without a cluster) to a cluster and back; the host
goes to ``binding`` or ``unbinding``, its agent is told to exit at its next poll and registers again, which
brings it to ``discovering`` in the cluster or ``discovering-unbound`` in its infra-env. A host reset exists for
day-2 hosts only: ``resetting-pending-user-action`` until the host boots the discovery image again.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import ServiceRefusal
from reference_service.http.auth import Auth
from reference_service.http.common import check_model, read_json, service_of
from reference_service.http.routing import canonical_uuid, route
from reference_service.http.user_routes import host_view
from reference_service.orchestrator import BASE, ReferenceService
from rules import states
from rules.install import IGNITION_CLUSTER_STATES, host_ignition

H = BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}"
#: Statuses whose unbind sends the host to unbinding; from the others (during or after an installation) it
#: goes to unbinding-pending-user-action (the real host state machine's two UnbindHost rules).
UNBIND_PRE_INSTALL = ("known", "discovering", "disconnected", "insufficient", "pending-for-input")
UNBIND_LATER = ("preparing-for-installation", "preparing-successful", "preparing-failed", "installing",
                "installing-in-progress", "installing-pending-user-action", "installed", "added-to-existing-cluster",
                "error", "cancelled")
#: The real ``HostInstallingStatuses``: a host in one of them cannot be unbound.
INSTALLING = ("preparing-for-installation", "preparing-successful", "installing", "installing-in-progress",
              "installing-pending-user-action")
#: What an unbound host forgets of its cluster (``restFieldsOnUnbind``, ``resetLogsField``).
UNBIND_FORGETS = ("progress", "progress_stages", "logs_info", "logs_started_at", "logs_collected_at", "connectivity",
                  "domain_name_resolutions", "free_addresses", "images_status", "installation_disk_id",
                  "installation_disk_path", "machine_config_pool_name", "api_vip_connectivity", "bootstrap",
                  "inventory", "stage_started_at", "stage_updated_at")
RESET_SOURCES = ("resetting", "discovering", "known", "installing-pending-user-action", "installing",
                 "preparing-for-installation", "preparing-successful", "preparing-failed", "pending-for-input",
                 "resetting-pending-user-action", "installing-in-progress", "installed", "error", "cancelled",
                 "added-to-existing-cluster")
#: Where a reset host waits until it boots the discovery image again (its next registration rediscovers it).
RESETTING = ("resetting-pending-user-action",
             "Host requires booting into the discovery image to complete resetting the installation")
#: Ignition spec versions an override may be written in (``ignitioncommon.ParseToLatest`` takes 3.x).
IGNITION_VERSIONS = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0")


def _host(svc: ReferenceService, request: Request) -> dict[str, Any]:
    return svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])


def _name(host: dict[str, Any]) -> str:
    return str(host.get("requested_hostname") or host["id"])


async def bind(request: Request) -> Response:
    svc = service_of(request)
    host = _host(svc, request)
    body = await read_json(request)
    check_model("bind-host-params", body)
    cid = canonical_uuid(body["cluster_id"])
    if host.get("cluster_id"):
        raise ServiceRefusal(409, f"Host {host['id']} is already bound to cluster {host['cluster_id']}")
    cluster = svc.store.get_cluster(cid)
    if cluster is None:
        raise ServiceRefusal(400, f"Failed to find cluster {cid}")
    if cluster.get("status") not in states.ACCEPTING_CLUSTER_STATES:
        raise ServiceRefusal(409, f"Cluster {cid} cannot accept new agents due to its current state: "
                                  f"{cluster.get('status')}")
    if host.get("status") != "known-unbound":
        raise ServiceRefusal(409, f"Host {host['id']} is in {host.get('status')} state: only a known-unbound host "
                                  "can be bound")
    for name in ("progress_stages", "inventory", "bootstrap", "images_status"):
        host.pop(name, None)
    host["cluster_id"], host["progress"] = cid, {"installation_percentage": 0}
    svc.set_status(host, "binding", "Host is waiting to be bound to the cluster")
    svc.store.save_host(host)
    svc.event(f"Host {_name(host)}: Successfully bound to cluster {cid}", host)
    return JSONResponse(host_view(svc, host))


async def unbind(request: Request) -> Response:
    svc = service_of(request)
    host = _host(svc, request)
    status = host.get("status", "")
    if status in INSTALLING:
        raise ServiceRefusal(409, f"Cannot unbind Host {host['id']} while it is in the middle of installing.")
    cid = host.get("cluster_id")
    if not cid:
        raise ServiceRefusal(409, f"Host {host['id']} is already unbound")
    infra_env = svc.store.get_infra_env(host["infra_env_id"]) or {}
    if infra_env.get("cluster_id"):
        raise ServiceRefusal(409, f"Cannot unbind Host {host['id']}. InfraEnv {host['infra_env_id']} is bound to "
                                  f"Cluster {infra_env['cluster_id']}")
    if status not in UNBIND_PRE_INSTALL + UNBIND_LATER:
        raise ServiceRefusal(409, f"Host {host['id']} cannot be unbound in status {status}")
    for name in UNBIND_FORGETS:
        host.pop(name, None)
    host.update({"cluster_id": None, "kind": "Host", "role": "auto-assign", "suggested_role": "auto-assign",
                 "progress": {"installation_percentage": 0}})
    svc.set_status(host, "unbinding" if status in UNBIND_PRE_INSTALL else "unbinding-pending-user-action",
                   "Host is waiting to be unbound from the cluster")
    svc.store.save_host(host)
    svc.refresh_cluster(cid)
    svc.event(f"Host {_name(host)}: Successfully unbound", host)
    return JSONResponse(host_view(svc, host))


async def reset(request: Request) -> Response:
    svc = service_of(request)
    host = _host(svc, request)
    cluster = svc.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
    day2 = host.get("kind") == "AddToExistingClusterHost" or (cluster or {}).get("kind") == "AddHostsCluster"
    if not day2:
        raise ServiceRefusal(409, "method only allowed when adding hosts to an existing cluster")
    if cluster is None:
        raise ServiceRefusal(409, "method only allowed when host assigned to an existing cluster")
    if host.get("status") not in RESET_SOURCES:
        svc.event(f"Host {_name(host)}: failed to reset installation", host, "error")
        raise ServiceRefusal(409, f"Host {host['id']} cannot be reset in status {host.get('status')}")
    for name in ("progress_stages", "inventory", "bootstrap", "images_status"):
        host.pop(name, None)
    host["progress"] = {"installation_percentage": 0}
    svc.set_status(host, *RESETTING)
    svc.store.save_host(host)
    svc.event(f"Host {_name(host)}: installation has been reset", host)
    return JSONResponse(host_view(svc, host))


async def install(request: Request) -> Response:
    """``V2InstallHost``: a known day-2 host installed on its own (a worker unless its role says otherwise);
    refused as the real service refuses it, and, as the cluster's install, without an OS image to write."""
    svc = service_of(request)
    host = _host(svc, request)
    cluster = svc.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
    if cluster is None:
        raise ServiceRefusal(404, f"host {host['id']} is not bound to any cluster")
    if host.get("kind") != "AddToExistingClusterHost" and cluster.get("kind") != "AddHostsCluster":
        raise ServiceRefusal(409, "method only allowed when adding hosts to an existing cluster")
    if host.get("status") != "known":
        raise ServiceRefusal(409, f"cannot install host in state {host.get('status')}")
    if host.get("role") in (None, "", "auto-assign"):
        host["role"] = "worker"
    host["kind"] = "AddToExistingClusterHost"
    svc.refresh_host(host)
    if host.get("status") != "known":
        raise ServiceRefusal(409, f"cannot install host in state {host.get('status')} after refresh")
    if svc.os_image_digest() is None:
        raise ServiceRefusal(409, "Host cannot be installed here: the reference service has no OS image to write to "
                                  "its disk; start it with --os-image FILE (or REFERENCE_SERVICE_OS_IMAGE)")
    svc.set_status(host, "installing", "Installation is in progress")
    svc.store.save_host(host)
    return JSONResponse(host_view(svc, host), status_code=202)


def _with_override(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base`` as Ignition merges: lists of a section are appended to, values replaced."""
    out = dict(base)
    for key, value in override.items():
        if key == "ignition":
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = dict(out[key])
            for sub, item in value.items():
                old = merged.get(sub)
                merged[sub] = old + item if isinstance(old, list) and isinstance(item, list) else item
            out[key] = merged
        else:
            out[key] = value
    return out


async def get_ignition(request: Request) -> Response:
    """The host's Ignition as its installation wrote it: 404 without a cluster, 409 before the install."""
    svc = service_of(request)
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    host = svc.store.get_host(ie, hid)
    if host is None:
        raise ServiceRefusal(404, f"host {hid} not found in infra env {ie}")
    cluster = svc.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
    if cluster is None:
        raise ServiceRefusal(404, f"Cluster not found for host {hid} in infra env {ie}")
    if cluster.get("status") not in IGNITION_CLUSTER_STATES:
        raise ServiceRefusal(409, f"cluster {cluster['id']} is in {cluster.get('status')} state, files can be "
                                  "downloaded only when status is one of: " + ", ".join(IGNITION_CLUSTER_STATES))
    role = "bootstrap" if host.get("bootstrap") else str(host.get("role") or "master")
    config = json.loads(host_ignition(host, cluster, role))
    if host.get("ignition_config_overrides"):
        config = _with_override(config, json.loads(host["ignition_config_overrides"]))
    return JSONResponse({"config": json.dumps(config)})


def ignition_problem(text: str) -> str | None:
    """Why ``text`` is no Ignition config the real service takes (None: it is one)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return f"config is not valid: {exc}"
    if not isinstance(doc, dict) or not isinstance(doc.get("ignition"), dict):
        return "config is not valid: the ignition section is missing"
    version = doc["ignition"].get("version")
    if version not in IGNITION_VERSIONS:
        return f"unsupported config version {version!r}: one of {list(IGNITION_VERSIONS)} is needed"
    return None


async def update_ignition(request: Request) -> Response:
    """An Ignition override for the host (an empty ``config`` removes it): 201 without a body."""
    svc = service_of(request)
    host = _host(svc, request)
    body = await read_json(request)
    check_model("host-ignition-params", body)
    config = str(body.get("config") or "")
    if config:
        problem = ignition_problem(config)
        if problem:
            raise ServiceRefusal(400, problem)
    host["ignition_config_overrides"] = config
    svc.store.save_host(host)
    svc.event(f"Host {_name(host)}: custom discovery ignition config was applied", host)
    return Response(status_code=201)


ROUTES = [
    route(H + "/actions/bind", bind, methods=["POST"], auth=Auth.ADMIN),
    route(H + "/actions/unbind", unbind, methods=["POST"], auth=Auth.ADMIN),
    route(H + "/actions/reset", reset, methods=["POST"], auth=Auth.ADMIN),
    route(H + "/actions/install", install, methods=["POST"], auth=Auth.ADMIN),
    route(H + "/ignition", get_ignition, methods=["GET"], auth=Auth.ADMIN),
    route(H + "/ignition", update_ignition, methods=["PATCH"], auth=Auth.ADMIN),
]
