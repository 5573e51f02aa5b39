"""The user-facing routes of the spec: clusters, infra-envs, hosts (list, get, update, delete), events, and
starting an installation. Every route authenticates the user (``Auth.ADMIN``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import ServiceRefusal
from reference_service.http import changes
from reference_service.http.auth import Auth
from reference_service.http.common import check_model, json_list, json_with_list, public, read_json, service_of
from reference_service.http.routing import canonical_uuid, route
from reference_service.orchestrator import BASE, ReferenceService
from reference_service.store.database import _now_iso
from rules import cluster_validations, user_checks
from rules.events import filter_events
from rules.presentation import cluster_out, host_out, infra_env_out


def host_view(svc: ReferenceService, host: dict[str, Any]) -> dict[str, Any]:
    """A stored host as users read it (``presentation.host_out``)."""
    cluster = svc.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
    return host_out(public(host), cluster)


async def create_cluster(request: Request) -> Response:
    body = await read_json(request)
    check_model("cluster-create-params", body)
    user_checks.check_create(body)
    svc = service_of(request)
    cid = str(uuid.uuid4())
    now = _now_iso()
    cluster = {k: v for k, v in body.items() if k != "pull_secret"}
    cluster.update({
        "kind": "Cluster", "id": cid, "href": f"{BASE}/v2/clusters/{cid}", "status": "insufficient",
        "status_info": "Cluster is not ready for install", "image_info": {}, "pull_secret_set": True,
        "created_at": now, "updated_at": now, "hosts": [], "total_host_count": 0,
    })
    _new_cluster_defaults(cluster)
    svc.store.save_cluster(cluster)
    svc.store.add_event(f"Successfully registered cluster {cluster.get('name')}", cluster_id=cid)
    svc.refresh_cluster(cid)
    return _cluster_view(svc, cid, status_code=201)


def _new_cluster_defaults(cluster: dict[str, Any]) -> None:
    """What the real registration fills in: the topology in both spellings, the default cluster and service
    networks, the network type, and the entries' cluster ids."""
    sno = cluster.get("control_plane_count") == 1 or cluster.get("high_availability_mode") == "None"
    cluster["control_plane_count"] = 1 if sno else int(cluster.get("control_plane_count") or 3)
    cluster["high_availability_mode"] = "None" if sno else "Full"
    if sno:
        cluster.setdefault("user_managed_networking", True)
    cluster.setdefault("network_type", "OVNKubernetes")
    cluster.setdefault("vip_dhcp_allocation", False)
    if not cluster.get("cluster_networks"):
        cluster["cluster_networks"] = [{"cidr": cluster.pop("cluster_network_cidr", None)
                                        or cluster_validations.DEFAULT_CLUSTER_NETWORK,
                                        "host_prefix": cluster.pop("cluster_network_host_prefix", None)
                                        or cluster_validations.DEFAULT_HOST_PREFIX}]
    if not cluster.get("service_networks"):
        cluster["service_networks"] = [{"cidr": cluster.pop("service_network_cidr", None)
                                        or cluster_validations.DEFAULT_SERVICE_NETWORK}]
    changes.own_entries(cluster)


def _cluster_view(svc: ReferenceService, cluster_id: str, status_code: int = 200,
                  with_hosts: bool = True) -> Response:
    """The cluster with its hosts, sent a host at a time (at 1,000 hosts their reports are 330 MB)."""
    cluster = svc.store.get_cluster(cluster_id)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    stored = svc.store.peers(cluster_id=cluster_id)
    doc = cluster_out(public({k: v for k, v in cluster.items() if k != "hosts"}), stored)
    if not with_hosts:
        doc.pop("hosts", None)
        return JSONResponse(doc, status_code=status_code)
    hosts = (host_out(public(h), cluster) for h in svc.store.list_hosts(cluster_id=cluster_id))
    return json_with_list(doc, "hosts", hosts, status_code=status_code)


def _is_uuid(text: Any) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() == "true"


async def list_clusters(request: Request) -> Response:
    """The clusters, with their hosts only when ``with_hosts`` (the real service's default leaves them out)."""
    svc = service_of(request)
    clusters = []
    for stored in svc.store.list_clusters():
        cluster = cluster_out(public({k: v for k, v in stored.items() if k != "hosts"}),
                              svc.store.peers(cluster_id=stored["id"]))
        if _flag(request, "with_hosts"):
            cluster["hosts"] = [host_out(public(h), stored) for h in svc.store.list_hosts(cluster_id=stored["id"])]
        else:
            cluster.pop("hosts", None)
        clusters.append(cluster)
    return JSONResponse(clusters)


async def get_cluster(request: Request) -> Response:
    return _cluster_view(service_of(request), request.path_params["cluster_id"],
                         with_hosts=not _flag(request, "exclude-hosts"))


async def update_cluster(request: Request) -> Response:
    svc, cid = service_of(request), request.path_params["cluster_id"]
    changes.update_cluster(svc, cid, await read_json(request))
    return _cluster_view(svc, cid, status_code=201)


async def install_cluster(request: Request) -> Response:
    svc, cid = service_of(request), request.path_params["cluster_id"]
    await changes.install_cluster(svc, cid)
    return _cluster_view(svc, cid, status_code=202)


async def list_cluster_hosts(request: Request) -> Response:
    """The real service's filters (``role``, ``status``); inventory and connectivity only when asked for."""
    hosts = service_of(request).store.list_hosts(cluster_id=request.path_params["cluster_id"])
    role, status = request.query_params.get("role"), request.query_params.get("status")
    left_out = {name for name, flag in (("inventory", "with-inventory"), ("connectivity", "with-connectivity"))
                if not _flag(request, flag)}
    svc = service_of(request)
    cluster = svc.store.get_cluster(request.path_params["cluster_id"])
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {request.path_params['cluster_id']} not found")
    return json_list(host_out(public({k: v for k, v in h.items() if k not in left_out}), cluster) for h in hosts
                     if (not role or h.get("role") == role) and (not status or h.get("status") == status))


async def create_infra_env(request: Request) -> Response:
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
    if not isinstance(doc.get("static_network_config"), (str, type(None))):
        doc["static_network_config"] = json.dumps(doc["static_network_config"])
    svc.store.save_infra_env(doc, token=svc.store.new_infra_env_token(doc["id"]))
    return JSONResponse(infra_env_out(public(doc)), status_code=201)


async def list_infra_envs(request: Request) -> Response:
    """The infra-envs, only those of ``cluster_id`` when it is given (the real service's filter)."""
    wanted = request.query_params.get("cluster_id")
    if wanted is not None:
        wanted = canonical_uuid(wanted)
        if not _is_uuid(wanted):
            raise ServiceRefusal(400, f"cluster_id in query must be of type uuid: \"{wanted}\"")
    return JSONResponse([infra_env_out(public(d)) for d in service_of(request).store.list_infra_envs()
                         if wanted is None or d.get("cluster_id") == wanted])


async def get_infra_env(request: Request) -> Response:
    ie = request.path_params["infra_env_id"]
    doc = service_of(request).store.get_infra_env(ie)
    if doc is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    return JSONResponse(infra_env_out(public(doc)))


async def list_hosts(request: Request) -> Response:
    svc = service_of(request)
    ie = request.path_params["infra_env_id"]
    if svc.store.get_infra_env(ie) is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    # a small cluster's hosts are evaluated as they are listed (a disconnection shows at once); a big one's
    # are the monitor's (listing 1,000 hosts must not evaluate 1,000 hosts)
    # (evaluated, and saved, before the first byte is sent: a copy saved between two chunks would undo the
    # replies that came meanwhile)
    hosts = [svc.refresh_host(h) if svc.settler.at_once(h) else h for h in svc.store.list_hosts(infra_env_id=ie)]
    clusters: dict[str, dict[str, Any] | None] = {}
    for h in hosts:
        if h.get("cluster_id") and h["cluster_id"] not in clusters:
            clusters[h["cluster_id"]] = svc.store.get_cluster(h["cluster_id"])
    return json_list(host_out(public(h), clusters.get(h.get("cluster_id") or "")) for h in hosts)


async def get_host(request: Request) -> Response:
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    return JSONResponse(host_view(svc, svc.refresh_host(host)))


async def update_host(request: Request) -> Response:
    svc = service_of(request)
    host = changes.update_host(svc, request.path_params["infra_env_id"], request.path_params["host_id"],
                               await read_json(request))
    return JSONResponse(host_view(svc, host), status_code=201)


async def delete_host(request: Request) -> Response:
    svc = service_of(request)
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    host = svc.require_host(ie, hid)
    svc.store.delete_host(ie, hid)
    if host.get("cluster_id"):
        svc.refresh_cluster(host["cluster_id"])
    return Response(status_code=204)


async def list_events(request: Request) -> Response:
    """``v2ListEvents`` with its filters, paging and count headers (``rules.events.filter_events``)."""
    q = request.query_params
    for name in ("cluster_id", "host_id", "infra_env_id"):
        if q.get(name) and not _is_uuid(q[name]):
            raise ServiceRefusal(400, f"{name} in query must be of type uuid: \"{q[name]}\"")
    cluster_id = canonical_uuid(q.get("cluster_id")) if q.get("cluster_id") else None
    host_id = canonical_uuid(q.get("host_id")) if q.get("host_id") else None
    events = service_of(request).store.events(cluster_id=cluster_id, host_id=host_id)
    try:
        selected, counts = filter_events(events, q)
    except ValueError as exc:
        raise ServiceRefusal(400, str(exc)) from None
    headers = {f"Severity-Count-{s.capitalize()}": str(n) for s, n in counts.items()}
    headers["Event-Count"] = str(sum(counts.values()))
    return JSONResponse(selected, headers=headers)


ROUTES = [
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts", list_hosts, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}", get_host, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}", update_host, methods=["PATCH"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}/hosts/{host_id}", delete_host, methods=["DELETE"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs", create_infra_env, methods=["POST"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs", list_infra_envs, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/infra-envs/{infra_env_id}", get_infra_env, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/clusters", create_cluster, methods=["POST"], auth=Auth.ADMIN),
    route(BASE + "/v2/clusters", list_clusters, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/clusters/{cluster_id}", get_cluster, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/clusters/{cluster_id}", update_cluster, methods=["PATCH"], auth=Auth.ADMIN),
    route(BASE + "/v2/clusters/{cluster_id}/hosts", list_cluster_hosts, methods=["GET"], auth=Auth.ADMIN),
    route(BASE + "/v2/clusters/{cluster_id}/actions/install", install_cluster, methods=["POST"], auth=Auth.ADMIN),
    route(BASE + "/v2/events", list_events, methods=["GET"], auth=Auth.ADMIN),
]
