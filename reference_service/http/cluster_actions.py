"""The rest of a client session's calls, with the real service's semantics: a cluster's supported platforms,
turning an installed cluster into one that adds hosts (``allow-add-hosts``, ``allow-add-workers``), resetting
a host's resettable validations, regenerating an infra-env's signing key, the features in detail, and the
operator catalogue's details (no operators are offered here, so each named one is not found)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import ServiceRefusal
from reference_service.http import session_routes
from reference_service.http.auth import Auth
from reference_service.http.common import service_of
from reference_service.http.routing import route
from reference_service.http.user_routes import _cluster_view
from reference_service.orchestrator import BASE
from rules.documents import is_sno
from rules.preinstall import disks_info, installation_disk

V2 = BASE + "/v2"
#: The validations ``v2ResetHostValidation`` resets: their step runs again.
RESETTABLE_VALIDATIONS = ("sufficient-installation-disk-speed", "container-images-available")


async def supported_platforms(request: Request) -> Response:
    """``none`` for a cluster without hosts or of a single node, else what every host supports (baremetal and
    none: no host here runs on vSphere, Nutanix or OCI)."""
    svc = service_of(request)
    cluster = session_routes._cluster(svc, request)
    cid = cluster["id"]
    if not svc.store.list_hosts(cluster_id=cid) or is_sno(cluster):
        return JSONResponse(["none"])
    return JSONResponse(["baremetal", "none"])


async def allow_add_hosts(request: Request) -> Response:
    """An installed cluster becomes one hosts are added to (``TransformClusterToDay2``): 400 otherwise."""
    svc = service_of(request)
    cluster = session_routes._cluster(svc, request)
    cid = cluster["id"]
    if cluster.get("status") != "installed":
        raise ServiceRefusal(400, f"cannot transform cluster {cid} to day2. Expected cluster status: installed, "
                                  f"but cluster status is: {cluster.get('status')}")
    if cluster.get("kind", "Cluster") != "Cluster":
        raise ServiceRefusal(400, f"cannot transform cluster {cid} to day2. Expected cluster kind: Cluster, but "
                                  f"cluster kind is: {cluster.get('kind')}")
    cluster.update({"status": "adding-hosts", "status_info": "cluster is adding hosts to existing OCP cluster",
                    "kind": "AddHostsCluster",
                    "api_vip_dnsname": f"api.{cluster.get('name')}.{cluster.get('base_dns_domain')}"})
    svc.store.save_cluster(cluster)
    return _cluster_view(svc, cid, status_code=202)


async def reset_validation(request: Request) -> Response:
    """The disk speed of the installation disk, or the images' status, forgotten: the host tests them again."""
    svc = service_of(request)
    host = svc.require_host(request.path_params["infra_env_id"], request.path_params["host_id"])
    validation = request.path_params["validation_id"]
    if not host.get("cluster_id"):
        raise ServiceRefusal(500, f"host {host['id']} is not bound to any cluster, reset validation")
    if validation not in RESETTABLE_VALIDATIONS:
        raise ServiceRefusal(400, f'Validation "{validation}" cannot be reset or does not exist')
    if validation == "container-images-available":
        host["images_status"] = ""
    else:
        path = installation_disk(host)
        host["disks_info"] = json.dumps([d for d in disks_info(host) if d.get("path") != path])
    svc.store.save_host(host)
    svc.refresh_host(host)
    return Response(status_code=200)


async def regenerate_signing_key(request: Request) -> Response:
    """204: under the real service's local auth the image URLs are signed with the service's key, not the
    infra-env's, so a new infra-env key changes none of them (as here)."""
    ie = request.path_params["infra_env_id"]
    if service_of(request).store.get_infra_env(ie) is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    return Response(status_code=204)


async def detailed_features(request: Request) -> Response:
    """The features ``support-levels/features`` lists, each with its (no) incompatibilities; no operators."""
    version = request.query_params.get("openshift_version")
    if not version:
        raise ServiceRefusal(400, "openshift_version in query is required")
    if request.query_params.get("cpu_architecture", "x86_64") not in ("x86_64", "multi"):
        return JSONResponse({"features": [], "operators": []})
    listed = [{"feature-support-level-id": name, "support_level": level, "incompatibilities": []}
              for name, level in session_routes.FEATURES.items()]
    return JSONResponse({"features": listed, "operators": []})


async def operator_properties(request: Request) -> Response:
    raise ServiceRefusal(404, f"Operator {request.path_params['operator_name']} not found: this reference service "
                              "offers no operators")


async def bundle(request: Request) -> Response:
    raise ServiceRefusal(404, f"Bundle {request.path_params['id']} not found: this reference service offers no "
                              "operator bundles")


C = V2 + "/clusters/{cluster_id}"
ROUTES = [
    route(C + "/supported-platforms", supported_platforms, methods=["GET"], auth=Auth.ADMIN),
    route(C + "/actions/allow-add-hosts", allow_add_hosts, methods=["POST"], auth=Auth.ADMIN),
    route(C + "/actions/allow-add-workers", allow_add_hosts, methods=["POST"], auth=Auth.ADMIN),
    route(V2 + "/infra-envs/{infra_env_id}/hosts/{host_id}/actions/reset-validation/{validation_id}",
          reset_validation, methods=["PATCH"], auth=Auth.ADMIN),
    route(V2 + "/infra-envs/{infra_env_id}/regenerate-signing-key", regenerate_signing_key, methods=["POST"],
          auth=Auth.ADMIN),
    route(V2 + "/supported-operators/{operator_name}", operator_properties, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/operators/bundles/{id}", bundle, methods=["GET"], auth=Auth.ADMIN),
    route(V2 + "/support-levels/features/detailed", detailed_features, methods=["GET"], auth=Auth.ADMIN),
]
