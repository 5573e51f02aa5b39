"""``no-ip-collisions-in-network``: an address that two hosts of a cluster both hold, found in one pass.

The real service stores a cluster-level report, ``cluster.ip_collisions`` (JSON ``{ip: [mac, ...]}``), which its
cluster monitor recomputes only while the cluster is before installation (pending-for-input, insufficient,
ready), and then judges each host against it: a host fails when its inventory holds one of the reported
addresses. It builds the report from connectivity-check replies (an address answering ARP on one NIC with two
different MACs). Simulated hosts (a swarm, dry-run agents) have no real L2 to answer ARP, so here the report is
also built the cheap way, from what the hosts say about themselves: one pass over the cluster's inventories
builds address -> (host, MAC), and an address held by two hosts is a collision. Both sources are merged.

The host-level messages are the real service's, word for word.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from rules.cluster_model import ClusterModel
from rules.documents import HostView, Outcome, deriver
from rules.network import CATEGORY, is_day2
from rules.registry import validation

VALIDATION_ID = "no-ip-collisions-in-network"
#: Cluster states in which the report is recomputed (the real service's allowedStates).
EVALUATED_STATES = ("pending-for-input", "insufficient", "ready")


def _host_addresses(inventory: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(address without prefix, MAC of its NIC) for every routable address the inventory reports."""
    for nic in inventory.get("interfaces") or []:
        if not isinstance(nic, dict):
            continue
        mac = str(nic.get("mac_address") or "").lower()
        for cidr in list(nic.get("ipv4_addresses") or []) + list(nic.get("ipv6_addresses") or []):
            try:
                ip = ipaddress.ip_interface(str(cidr)).ip
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
                continue  # per-link or per-host by definition: two hosts holding them is no collision
            yield str(ip), mac




def _addresses_of(inventory: Any) -> list[tuple[str, str]]:
    return list(_host_addresses(inventory)) if isinstance(inventory, dict) else []


def inventory_collisions(model: ClusterModel, hosts: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Addresses held by two or more hosts: {ip: sorted MACs of the NICs holding it (the host id for a NIC
    without a MAC)}, from one pass over the hosts building address -> holders."""
    holders: dict[str, dict[str, str]] = {}  # ip -> host id -> mac
    for host in hosts:
        host_id = str(host.get("id") or "")
        for ip, mac in model.fact(host, "inventory", _addresses_of):
            holders.setdefault(ip, {}).setdefault(host_id, mac or host_id)
    return {ip: sorted(by_host.values()) for ip, by_host in holders.items() if len(by_host) > 1}


@deriver("connectivity")
def _l2_conflicts(report: Any) -> list[tuple[str, list[str]]]:
    """(remote ip, sorted MACs) where one outgoing NIC saw the address with two different MACs."""
    if not isinstance(report, dict):
        return []
    out: dict[str, set[str]] = {}
    seen: dict[tuple[str, str], str] = {}
    for remote in report.get("remote_hosts") or []:
        for l2 in (remote.get("l2_connectivity") or []) if isinstance(remote, dict) else []:
            if not isinstance(l2, dict):
                continue
            key = (str(l2.get("outgoing_nic") or ""), str(l2.get("remote_ip_address") or ""))
            mac = str(l2.get("remote_mac") or "")
            previous = seen.get(key)
            if previous and mac and previous != mac:
                out.setdefault(key[1], set()).update((previous, mac))
            seen[key] = mac
    return [(ip, sorted(macs)) for ip, macs in out.items()]


def connectivity_collisions(model: ClusterModel, hosts: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """The real service's rule, over every host's connectivity report."""
    out: dict[str, list[str]] = {}
    for host in hosts:
        for ip, macs in model.fact(host, "connectivity", _l2_conflicts):
            out[ip] = sorted({*out.get(ip, []), *macs})
    return out


def cluster_ip_collisions(model: ClusterModel, hosts: list[dict[str, Any]]) -> str:
    """The cluster's ``ip_collisions`` field: both sources merged, as compact JSON with sorted keys (so an
    unchanged report is an unchanged string and the cluster document is not rewritten for nothing)."""
    merged = connectivity_collisions(model, hosts)
    for ip, macs in inventory_collisions(model, hosts).items():
        merged[ip] = sorted({*merged.get(ip, []), *macs})
    return json.dumps(merged, sort_keys=True, separators=(",", ":"))


def update_cluster(model: ClusterModel, cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> None:
    """Recompute ``cluster['ip_collisions']`` where the real service does (before installation only)."""
    if cluster.get("status") in EVALUATED_STATES:
        cluster["ip_collisions"] = cluster_ip_collisions(model, hosts)


@validation(VALIDATION_ID, CATEGORY)
def no_ip_collisions(view: HostView) -> Outcome:
    host_id = view.host.get("id")
    if view.cluster is None:
        return "success", "Cluster has not yet been defined, skipping validation."
    inventory = view.inventory
    if inventory is None:
        return "success", "Host inventory has not yet been defined, skipping validation."
    if is_day2(view):
        return "success", f"Skipping validation for day 2 host {host_id}"
    raw = view.cluster.get("ip_collisions") or ""
    if not raw:
        return "success", "IP collisions have not yet been evaluated"
    try:
        report = json.loads(raw)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return "error", "Unable to unmarshall ip collision report for cluster"
    mine = {ip for ip, _ in view.model.fact(view.host, "inventory", _addresses_of)}
    lines = [f"Collisions detected for host ID {host_id}, IP address: {ip} Mac addresses: "
             f"{','.join(str(m) for m in macs) if isinstance(macs, list) else macs}\n"
             for ip, macs in sorted(report.items()) if _normal(ip) in mine]
    if lines:
        return "failure", "".join(lines)
    return "success", f"No IP collisions were detected by host {host_id}"


def _normal(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip
