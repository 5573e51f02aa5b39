"""The user-facing routes of the spec: clusters, infra-envs, hosts (list, get, update, delete), events, and
starting an installation. Every route authenticates the user (``Auth.ADMIN``)."""

from __future__ import annotations

import json
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import ServiceRefusal
from reference_service.http.auth import Auth
from reference_service.http.common import check_model, json_list, json_with_list, public, read_json, service_of
from reference_service.http.routing import route
from reference_service.orchestrator import BASE, ReferenceService
from reference_service.store.database import _now_iso
from rules.documents import skipped_formatting
from rules.hardware import hostname_problem


async def create_cluster(request: Request) -> Response:
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
    return _cluster_view(svc, cid, status_code=201)


def _cluster_view(svc: ReferenceService, cluster_id: str, status_code: int = 200,
                  with_hosts: bool = True) -> Response:
    """The cluster with its hosts, sent a host at a time (at 1,000 hosts their reports are 330 MB)."""
    cluster = svc.store.get_cluster(cluster_id)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    if not with_hosts:
        return JSONResponse(public({k: v for k, v in cluster.items() if k != "hosts"}), status_code=status_code)
    hosts = (public(h) for h in svc.store.list_hosts(cluster_id=cluster_id))
    return json_with_list(public(cluster), "hosts", hosts, status_code=status_code)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() == "true"


async def list_clusters(request: Request) -> Response:
    """The clusters, with their hosts only when ``with_hosts`` (the real service's default leaves them out)."""
    svc = service_of(request)
    clusters = [public({k: v for k, v in c.items() if k != "hosts"}) for c in svc.store.list_clusters()]
    if _flag(request, "with_hosts"):
        for cluster in clusters:
            cluster["hosts"] = [public(h) for h in svc.store.list_hosts(cluster_id=cluster["id"])]
    return JSONResponse(clusters)


async def get_cluster(request: Request) -> Response:
    return _cluster_view(service_of(request), request.path_params["cluster_id"],
                         with_hosts=not _flag(request, "exclude-hosts"))


async def update_cluster(request: Request) -> Response:
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
    return _cluster_view(svc, cid, status_code=201)


async def install_cluster(request: Request) -> Response:
    svc = service_of(request)
    cid = request.path_params["cluster_id"]
    svc.install_cluster(cid)
    return _cluster_view(svc, cid, status_code=202)


async def list_cluster_hosts(request: Request) -> Response:
    """The real service's filters (``role``, ``status``); inventory and connectivity only when asked for."""
    hosts = service_of(request).store.list_hosts(cluster_id=request.path_params["cluster_id"])
    role, status = request.query_params.get("role"), request.query_params.get("status")
    left_out = {name for name, flag in (("inventory", "with-inventory"), ("connectivity", "with-connectivity"))
                if not _flag(request, flag)}
    return json_list(public({k: v for k, v in h.items() if k not in left_out}) for h in hosts
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
    svc.store.save_infra_env(doc, token=svc.store.new_infra_env_token(doc["id"]))
    return JSONResponse(public(doc), status_code=201)


async def list_infra_envs(request: Request) -> Response:
    return JSONResponse([public(d) for d in service_of(request).store.list_infra_envs()])


async def get_infra_env(request: Request) -> Response:
    ie = request.path_params["infra_env_id"]
    doc = service_of(request).store.get_infra_env(ie)
    if doc is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    return JSONResponse(public(doc))


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
    return json_list(public(h) for h in hosts)


async def get_host(request: Request) -> Response:
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    return JSONResponse(public(svc.refresh_host(host)))


async def update_host(request: Request) -> Response:
    body = await read_json(request)
    check_model("host-update-params", body)
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    if "host_role" in body:
        host["role"] = body["host_role"]
    if "host_name" in body:
        problem = hostname_problem(str(body["host_name"]))
        if problem:
            raise ServiceRefusal(400, problem)
        host["requested_hostname"] = body["host_name"]
    if body.get("disks_skip_formatting"):
        skipped = skipped_formatting(host)
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
    svc = service_of(request)
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    host = svc.require_host(ie, hid)
    svc.store.delete_host(ie, hid)
    if host.get("cluster_id"):
        svc.refresh_cluster(host["cluster_id"])
    return Response(status_code=204)


async def list_events(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(service_of(request).store.events(cluster_id=q.get("cluster_id"), host_id=q.get("host_id")))


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
