"""The changes a user makes, one function each, shared by the API's routes and the console's forms.

A host's role, hostname and disks, a cluster's networks and VIPs, starting an install: the console posts a form,
the API a JSON body, and both end here, so both get the same checks (the spec's model, the real service's update
validations, the editable states) and the same refusals (``ServiceRefusal``: 400, 404, 409). A console that
checked less than the API would let a person set what a client could not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from common.errors import ServiceRefusal
from reference_service import artifacts
from reference_service.http.common import check_model
from reference_service.orchestrator import ReferenceService
from rules import user_checks
from rules.documents import disk_key, parse_json_field, skipped_formatting
from rules.hardware import hostname_problem
from rules.user_checks import HOST_EDITABLE_STATES


def update_host(svc: ReferenceService, infra_env_id: str, host_id: str, body: Any) -> dict[str, Any]:
    """``v2UpdateHost``: the host as evaluated after the change."""
    check_model("host-update-params", body)
    host = svc.require_host(infra_env_id, host_id)
    if host.get("status") not in HOST_EDITABLE_STATES:
        raise ServiceRefusal(409, f"Host {host['id']} is in {host.get('status')} state, host can be updated only in "
                                  f"one of {list(HOST_EDITABLE_STATES)}")
    if "host_name" in body:
        problem = hostname_problem(str(body["host_name"]))
        if problem:
            raise ServiceRefusal(400, problem)
    if body.get("disks_selected_config"):
        _select_disks(host, body["disks_selected_config"])
    if "host_role" in body:
        host["role"] = body["host_role"]
    if "host_name" in body:
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
    return svc.refresh_host(host)


def _select_disks(host: dict[str, Any], selected: list[dict[str, Any]]) -> None:
    """``disks_selected_config``: the disk given the ``install`` role becomes the installation disk when the
    host has it and it is eligible (400 otherwise, with the real service's reason)."""
    disks = {disk_key(d): d for d in (parse_json_field(host, "inventory") or {}).get("disks") or []}
    by_path = {str(d.get("path")): d for d in disks.values() if d.get("path")}
    installs = [c for c in selected if c.get("role") == "install"]
    if len(installs) > 1:
        raise ServiceRefusal(400, "Only one disk can be set as the installation disk")
    for change in installs:
        disk = disks.get(str(change.get("id"))) or by_path.get(str(change.get("id")))
        if disk is None:
            raise ServiceRefusal(400, f"Disk {change.get('id')} was not found in host {host['id']}")
        eligibility = disk.get("installation_eligibility") or {}
        if not eligibility.get("eligible"):
            reasons = "; ".join(eligibility.get("not_eligible_reasons") or [])
            raise ServiceRefusal(400, f"Requested installation disk is not part of the host's valid disks: {reasons}")
        host["installation_disk_id"] = disk_key(disk)
        host["installation_disk_path"] = f"/dev/{disk['name']}" if disk.get("name") else str(disk.get("path", ""))


def update_cluster(svc: ReferenceService, cluster_id: str, body: Any) -> None:
    """``V2UpdateCluster``: checked, stored, and the cluster and its hosts evaluated again."""
    check_model("v2-cluster-update-params", body)
    cluster = svc.store.get_cluster(cluster_id)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    made = user_checks.check_update(cluster, body, svc.store.list_hosts(cluster_id=cluster_id))
    cluster.update({k: v for k, v in body.items() if k != "pull_secret" and v is not None})
    if made:  # the VIPs' host network is the machine network (``updateNonDhcpSingleStackNetworkParams``)
        cluster["machine_networks"] = [{"cidr": made}]
        cluster.pop("machine_network_cidr", None)
    if "pull_secret" in body:
        cluster["pull_secret_set"] = True
    for single in ("api_vip", "ingress_vip", "machine_network_cidr"):  # the lists are the truth now
        if f"{single.removesuffix('_cidr')}s" in body or f"{single}s" in body:
            cluster.pop(single, None)
    if body.get("api_vips") or body.get("ingress_vips"):
        cluster["vip_dhcp_allocation"] = False
    own_entries(cluster)
    svc.store.save_cluster(cluster)
    for host in svc.store.list_hosts(cluster_id=cluster_id):
        svc.refresh_host(host)
    svc.refresh_cluster(cluster_id)


def own_entries(cluster: dict[str, Any]) -> None:
    """The network and VIP entries carry their cluster's id; the single-value fields become lists."""
    for key in ("api_vips", "ingress_vips", "machine_networks", "cluster_networks", "service_networks"):
        entries = [dict(e) for e in cluster.get(key) or [] if isinstance(e, dict)]
        for entry in entries:
            entry["cluster_id"] = cluster["id"]
            if key.endswith("vips"):
                entry.setdefault("verification", "unverified")
        cluster[key] = entries
    for single, plural, field in (("api_vip", "api_vips", "ip"), ("ingress_vip", "ingress_vips", "ip"),
                                  ("machine_network_cidr", "machine_networks", "cidr")):
        if cluster.get(single) and not cluster.get(plural):
            cluster[plural] = [{field: cluster[single], "cluster_id": cluster["id"]}]


async def install_cluster(svc: ReferenceService, cluster_id: str) -> None:
    """``v2InstallCluster``. Refused (409) when this service has no OS image to write and is not told to
    dry-run: the hosts would otherwise wait in installing for a write-image that is never issued."""
    if svc.store.get_cluster(cluster_id) is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    if svc.os_image_digest() is None:
        raise ServiceRefusal(409, "Cluster cannot be installed here: the reference service has no OS image to "
                                  "write to the hosts' disks; start it with --os-image FILE (or "
                                  "REFERENCE_SERVICE_OS_IMAGE), with --dry-run-install to install without rebooting")
    svc.install_cluster(cluster_id)
    cluster, hosts = svc.store.get_cluster(cluster_id) or {}, svc.store.list_hosts(cluster_id=cluster_id)
    files = await asyncio.to_thread(artifacts.make, cluster, hosts)  # what the install leaves (openssl: ~0.1 s)
    svc.store.put_blob(artifacts.key(cluster_id), json.dumps(files).encode())
