"""A cluster's machine network, assigned as the real service's cluster monitor does it, and the parsed networks
the cluster validations read.

Before its validations the real service assigns the machine network when it can
(``autoAssignMachineNetworkCidr``): for a single-node cluster the one network its host is on (the default
route's when there are several), for a multi-node one the host network that holds the API (else ingress) VIP.
Without that a cluster whose user set its VIPs, or any SNO, never leaves pending-for-input, which is what
clients and the demo met. Given the cluster's model, what is read of the hosts (their networks) and of the
cluster (its networks) is derived once, not on every evaluation.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from rules.cluster_model import ClusterModel
from rules.documents import is_sno, parse_json_field
from rules.network import cluster_vips, user_managed_networking

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(texts: tuple[Any, ...]) -> list[Network]:
    out: list[Network] = []
    for text in texts:
        try:
            out.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError:
            continue
    return out


def _cluster_networks(texts: tuple[Any, ...]) -> list[Network]:
    return _networks(texts)


def _service_networks(texts: tuple[Any, ...]) -> list[Network]:
    return _networks(texts)


def cluster_networks(cluster: dict[str, Any], model: ClusterModel | None = None) -> list[Network]:
    """The cluster networks, parsed once by the cluster's model while they stay the same (when one is given)."""
    texts = tuple(n.get("cidr") for n in cluster.get("cluster_networks") or [] if isinstance(n, dict))
    texts = texts or ((cluster["cluster_network_cidr"],) if cluster.get("cluster_network_cidr") else ())
    found: list[Network] = model.parsed(texts, _cluster_networks) if model is not None else _networks(texts)
    return found


def service_networks(cluster: dict[str, Any], model: ClusterModel | None = None) -> list[Network]:
    texts = tuple(n.get("cidr") for n in cluster.get("service_networks") or [] if isinstance(n, dict))
    texts = texts or ((cluster["service_network_cidr"],) if cluster.get("service_network_cidr") else ())
    found: list[Network] = model.parsed(texts, _service_networks) if model is not None else _networks(texts)
    return found


def host_networks(host: dict[str, Any], model: ClusterModel | None = None) -> list[Network]:
    """The networks of the host's interface addresses, in inventory order (derived once per inventory by the
    cluster's model: a cluster's evaluation reads every host's)."""
    if model is not None:
        return list(model.fact(host, "inventory", _inventory_networks))
    return list(_inventory_networks(parse_json_field(host, "inventory")))


def _inventory_networks(inventory: Any) -> tuple[Network, ...]:
    out: list[Network] = []
    for iface in (inventory if isinstance(inventory, dict) else {}).get("interfaces") or []:
        for text in (iface.get("ipv4_addresses") or []) + (iface.get("ipv6_addresses") or []):
            try:
                net = ipaddress.ip_interface(str(text)).network
            except ValueError:
                continue
            if not net.is_loopback and not net.is_link_local and net not in out:
                out.append(net)
    return tuple(out)


def _default_route_network(host: dict[str, Any], candidates: list[Network]) -> Network | None:
    """The candidate holding the gateway of the host's lowest-metric default route, as the real service picks
    among several networks."""
    routes = (parse_json_field(host, "inventory") or {}).get("routes") or []
    best: tuple[int, str] | None = None
    for route in routes:
        if str(route.get("destination")) in ("0.0.0.0", "::") and route.get("gateway"):
            metric = int(route.get("metric") or 0)
            if best is None or metric < best[0]:
                best = (metric, str(route["gateway"]))
    if best is None:
        return None
    try:
        gateway = ipaddress.ip_address(best[1])
    except ValueError:
        return None
    return next((n for n in candidates if gateway.version == n.version and gateway in n), None)


def vip_network(vip: str, hosts: list[dict[str, Any]], model: ClusterModel | None = None) -> Network | None:
    """The first host network that holds ``vip`` (``CalculateMachineNetworkCIDR``)."""
    try:
        address = ipaddress.ip_address(vip)
    except ValueError:
        return None
    for host in hosts:
        for net in host_networks(host, model):
            if address.version == net.version and address in net:
                return net
    return None


def auto_machine_networks(cluster: dict[str, Any], hosts: list[dict[str, Any]],
                          model: ClusterModel | None = None) -> list[str] | None:
    """The machine networks the real service would assign now, or None to leave the cluster's as they are."""
    model = model if model is not None else ClusterModel()
    if cluster.get("status") not in ("pending-for-input", "insufficient"):
        return None
    if cluster.get("vip_dhcp_allocation"):
        return None  # the user chooses the network; DHCP then leases the VIPs in it
    if is_sno(cluster):
        if model.machine_networks(cluster):
            return None
        clusters, services = cluster_networks(cluster, model), service_networks(cluster, model)
        families = sorted({n.version for n in clusters})
        if families != sorted({n.version for n in services}):
            return None
        found = [n for h in hosts for n in host_networks(h, model)]
        chosen: list[str] = []
        for family in families:
            of_family = list(dict.fromkeys(n for n in found if n.version == family))
            if not of_family:
                return None
            pick = of_family[0] if len(of_family) == 1 else \
                (_default_route_network(hosts[0], of_family) if hosts else None)
            if pick is None:
                return None
            chosen.append(str(pick))
        return chosen
    if user_managed_networking(cluster) or cluster.get("load_balancer", {}).get("type") == "user-managed":
        return None
    api, ingress = cluster_vips(cluster, "api"), cluster_vips(cluster, "ingress")
    computed = []
    for index in range(2):
        vip = api[index] if index < len(api) else ingress[index] if index < len(ingress) else ""
        net = vip_network(vip, hosts, model) if vip else None
        if net is not None:
            computed.append(str(net))
    current = [str(n) for n in model.machine_networks(cluster)]
    if not computed or computed == current[:len(computed)]:
        return None
    return computed


def assign_machine_networks(cluster: dict[str, Any], hosts: list[dict[str, Any]],
                            model: ClusterModel | None = None) -> bool:
    """Sets the cluster's machine networks when ``auto_machine_networks`` finds them; whether it changed."""
    cidrs = auto_machine_networks(cluster, hosts, model)
    if not cidrs:
        return False
    cluster["machine_networks"] = [{"cidr": c, "cluster_id": cluster.get("id")} for c in cidrs]
    cluster["machine_network_cidr"] = cidrs[0]
    return True


# -- the validations ----------------------------------------------------------------------------------------
