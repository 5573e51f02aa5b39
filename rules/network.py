"""The network steps' arguments and their replies (assisted-service-api.md 4.2, 4.3, 5.3, 5.4); the
validations that depend on them are in ``network_validations``.

The real service builds ``connectivity-check`` arguments from every other host's inventory, asks each host
to sweep its own /22-or-longer IPv4 subnets for free addresses and resolves the cluster's DNS names. A DHCP
lease or a VIP verdict updates ``view.cluster``, which the orchestrator saves.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable
from typing import Any

from rules.cluster_model import ClusterModel
from rules.documents import HostView, effective_role, is_sno
from rules.registry import reply_handler, step_arguments

CATEGORY = "network"
#: The smallest subnet (in host bits) the service asks a host to scan for free addresses.
MAX_FREE_SCAN_HOST_BITS = 10
#: (max average RTT ms, max packet loss %) towards hosts of the same role (default_hw_requirements.json).
NETWORK_REQUIREMENTS = {"master": (100.0, 0.0), "arbiter": (1000.0, 0.0), "worker": (1000.0, 10.0)}
SKIP_CONNECTIVITY_STATES = ("discovering", "disconnected")
#: The name under ``apps`` whose resolution stands for ``*.apps``, and one no real zone should answer.
APPS_PROBE = "console-openshift-console"
WILDCARD_PROBE = "validateNoWildcardDNS"


# -- helpers ------------------------------------------------------------------------------------------------
def cluster_name_domain(view: HostView) -> tuple[str, str] | None:
    cluster = view.cluster or {}
    name, base = cluster.get("name"), cluster.get("base_dns_domain")
    return (str(name), str(base)) if name and base else None


def cluster_vips(cluster: dict[str, Any] | None, kind: str) -> list[str]:
    if not cluster:
        return []
    vips = [v.get("ip") for v in cluster.get(f"{kind}_vips") or [] if isinstance(v, dict) and v.get("ip")]
    if not vips and cluster.get(f"{kind}_vip"):
        vips = [cluster[f"{kind}_vip"]]
    return [str(v) for v in vips]


def user_managed_networking(cluster: dict[str, Any] | None) -> bool:
    if cluster and cluster.get("user_managed_networking") is not None:
        return bool(cluster["user_managed_networking"])
    return is_sno(cluster)


def is_day2(view: HostView) -> bool:
    return view.host.get("kind") == "AddToExistingClusterHost" or (view.cluster or {}).get("kind") == \
        "AddHostsCluster"


def interface_addresses(inventory: dict[str, Any]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    out = []
    for iface in inventory.get("interfaces") or []:
        for cidr in (iface.get("ipv4_addresses") or []) + (iface.get("ipv6_addresses") or []):
            try:
                out.append(ipaddress.ip_interface(cidr))
            except ValueError:
                continue
    return out


def _loopback(cidr: str) -> bool:
    try:
        return ipaddress.ip_interface(cidr).ip.is_loopback
    except ValueError:
        return False


# -- step arguments -----------------------------------------------------------------------------------------
def connectivity_params(view: HostView) -> str | None:
    """``connectivity-check-params`` as JSON: every other host's NICs (name, MAC, addresses without prefix), or
    None when no peer has any. At 1,000 hosts the list is 215 KB, issued to 150 hosts in the first seconds of a
    discovery; listing, sorting and looking up a thousand peers for each of them took 5-14 ms of the event loop
    per poll in that wave (docs/scale.md). So the whole cluster's listing is made once (each peer's entry once
    per inventory, ``view.model``), kept by the model while what it reads stays the same (every host's id,
    whether it is probed and its inventory), and each host gets it without its own entry."""
    model = view.model
    read = tuple((str(h.get("id")), h.get("status") in SKIP_CONNECTIVITY_STATES, h.get("inventory"))
                 for h in view.hosts)

    def listing(hosts: tuple[tuple[str, bool, Any], ...]) -> tuple[str, dict[str, tuple[int, int]]]:
        entries: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        at = 0
        for host_id, skipped, inventory in sorted(hosts, key=_first):
            entry = None if skipped else peer_entry(model, {"id": host_id, "inventory": inventory},
                                                    _probed_nics_json)
            if entry is not None:
                at += 2 if entries else 0  # (the separator before it)
                spans[host_id] = (at, at + len(entry))
                entries.append(entry)
                at += len(entry)
        return ", ".join(entries), spans

    text, spans = model.parsed(read, listing)
    own = spans.get(str(view.host.get("id")))
    if own is not None:  # its entry and one separator out
        start, end = own
        text = text[end + 2:] if start == 0 else text[:start - 2] + text[end:]
    return f"[{text}]" if text else None


def _first(item: tuple[str, bool, Any]) -> str:
    return item[0]


def _probed_nics_json(inv: Any) -> str | None:
    nics = _probed_nics(inv)
    return None if nics is None else json.dumps(nics)


def _probed_nics(inv: Any) -> list[dict[str, Any]] | None:
    """A peer's NICs as connectivity-check-params lists them; None without an inventory."""
    if not isinstance(inv, dict) or not inv:
        return None
    nics = []
    for iface in inv.get("interfaces") or []:
        addresses = [c.split("/")[0] for c in (iface.get("ipv4_addresses") or [])
                     + (iface.get("ipv6_addresses") or []) if not _loopback(c)]
        if iface.get("type") == "device" and not addresses:
            continue  # lo, kept in inventories by ENABLE_VIRTUAL_INTERFACES: nothing to probe remotely
        nics.append({"name": iface.get("name", ""), "mac": iface.get("mac_address", ""),
                     "ip_addresses": addresses})
    return nics


@step_arguments("connectivity-check")
def connectivity_check_args(view: HostView) -> list[str] | None:
    if view.host.get("cluster_id") and \
            not view.model.admissions.allowed(str(view.host.get("id")), len(view.hosts), view.now):
        return None  # a big cluster: at most 150 admissions a minute (rules/connectivity_admission.py)
    params = connectivity_params(view)
    return [params] if params else None


@step_arguments("free-network-addresses")
def free_addresses_args(view: HostView) -> list[str] | None:
    inv = view.inventory
    if not inv:
        return None
    networks: list[str] = []
    for iface in interface_addresses(inv):
        if iface.version == 4 and iface.network.max_prefixlen - iface.network.prefixlen <= MAX_FREE_SCAN_HOST_BITS:
            text = str(iface.network)
            if text not in networks:
                networks.append(text)
    return [json.dumps(networks)] if networks else None


def dns_names(name: str, base: str) -> list[str]:
    return [f"api.{name}.{base}", f"api-int.{name}.{base}", f"{APPS_PROBE}.apps.{name}.{base}",
            f"{WILDCARD_PROBE}.{name}.{base}.", f"{WILDCARD_PROBE}.{name}.{base}"]


@step_arguments("domain-resolution")
def domain_resolution_args(view: HostView) -> list[str] | None:
    names = cluster_name_domain(view)
    if names is None:
        return None
    return [json.dumps({"domains": [{"domain_name": d} for d in dns_names(*names)]})]


@step_arguments("verify-vips")
def verify_vips_args(view: HostView) -> list[str] | None:
    vips = [{"vip": v, "vip_type": "api"} for v in cluster_vips(view.cluster, "api")]
    vips += [{"vip": v, "vip_type": "ingress"} for v in cluster_vips(view.cluster, "ingress")]
    return [json.dumps(vips)] if vips else None


@step_arguments("tang-connectivity-check")
def tang_args(view: HostView) -> list[str] | None:
    enc = (view.cluster or {}).get("disk_encryption") or {}
    if enc.get("mode") != "tang" or not enc.get("tang_servers"):
        return None
    enable_on = str(enc.get("enable_on") or "none")
    roles = {"master", "arbiter", "worker"} if enable_on == "all" else {r.rstrip("s") for r in enable_on.split(",")}
    if effective_role(view.host) not in roles:
        return None
    return [json.dumps({"tang_servers": enc["tang_servers"]})]


@step_arguments("api-vip-connectivity-check")
def api_vip_args(view: HostView) -> list[str] | None:
    """Day-2 only: the worker ignition from the existing cluster's machine config server."""
    names = cluster_name_domain(view)
    cluster = view.cluster or {}
    address = cluster.get("api_vip_dnsname") or (f"api.{names[0]}.{names[1]}" if names else None)
    if not is_day2(view) or not address:  # (an imported cluster's API name may be an address: no domain)
        return None
    role = "master" if effective_role(view.host) == "master" else "worker"
    request: dict[str, Any] = {"url": f"http://{address}:22624/config/{role}"}
    endpoint = cluster.get("ignition_endpoint") or {}
    if endpoint.get("ca_certificate"):
        request["ca_certificate"] = endpoint["ca_certificate"]
    return [json.dumps(request)]


# -- replies ------------------------------------------------------------------------------------------------
def _store(field: str) -> Any:
    def handler(view: HostView, output: Any, reply: dict[str, Any]) -> None:
        if output is not None and int(reply.get("exit_code") or 0) == 0:
            view.host[field] = reply.get("output", "")

    return handler


# (bound to names: a rulebook finds an area's hooks among its module's names)
store_connectivity = reply_handler("connectivity-check", text_only=True)(_store("connectivity"))
store_domain_resolution = reply_handler("domain-resolution")(_store("domain_name_resolutions"))
store_api_vip_connectivity = reply_handler("api-vip-connectivity-check")(_store("api_vip_connectivity"))


@reply_handler("free-network-addresses")
def free_addresses_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    """Stored only when it lists something: the real service refuses an empty report."""
    if isinstance(output, list) and output and int(reply.get("exit_code") or 0) == 0:
        view.host["free_addresses"] = reply.get("output", "")


@reply_handler("tang-connectivity-check")
def tang_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    """A failed check is stored too (its error text), so disk-encryption validation can say why."""
    if int(reply.get("exit_code") or 0) == 0 and output is not None:
        view.host["tang_connectivity"] = reply.get("output", "")
    else:
        view.host["tang_connectivity"] = json.dumps({"is_success": False, "error": reply.get("error", "")})


def vip_mac(cluster_id: str, kind: str) -> str:
    """A stable MAC per cluster and VIP, so every host asks the DHCP server for the same two clients (and
    gets the same two addresses). 00:1a:4a is Red Hat's (Qumranet's) OUI."""
    digest = hashlib.sha256(f"{cluster_id}/{kind}".encode()).digest()
    return "00:1a:4a:" + ":".join(f"{b:02x}" for b in digest[:3])


@step_arguments("dhcp-lease-allocate")
def dhcp_lease_args(view: HostView) -> list[str] | None:
    """Only for clusters that let DHCP choose their VIPs, on the host's NIC in the machine network."""
    cluster = view.cluster
    cidrs = [c for c in view.machine_networks if c.version == 4]
    if not cluster or not cluster.get("vip_dhcp_allocation") or not cidrs or not view.inventory:
        return None
    nic = next((i.get("name") for i in view.inventory.get("interfaces") or []
                for a in i.get("ipv4_addresses") or [] if _in(a, cidrs[0])), None)
    if not nic:
        return None
    request = {"interface": nic, "api_vip_mac": vip_mac(cluster["id"], "api"),
               "ingress_vip_mac": vip_mac(cluster["id"], "ingress")}
    for kind in ("api", "ingress"):
        if cluster.get(f"_{kind}_vip_lease"):
            request[f"{kind}_vip_lease"] = cluster[f"_{kind}_vip_lease"]
    return [json.dumps(request)]


def _in(cidr: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_interface(cidr).ip in network
    except ValueError:
        return False


@reply_handler("dhcp-lease-allocate")
def dhcp_lease_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    """The leased addresses become the cluster's VIPs (if they are in its machine network), and the leases are
    kept to be handed back next time, so the VIPs keep their addresses."""
    cluster = view.cluster
    if not isinstance(output, dict) or cluster is None:
        return
    cidrs = view.model.machine_networks(cluster)
    addresses = {kind: str(output.get(f"{kind}_vip_address") or "") for kind in ("api", "ingress")}
    if not all(any(_in(a, c) for c in cidrs) for a in addresses.values()):
        return
    for kind, address in addresses.items():
        cluster[f"{kind}_vips"] = [{"ip": address, "cluster_id": cluster["id"]}]
        cluster[f"_{kind}_vip_lease"] = output.get(f"{kind}_vip_lease") or ""


@reply_handler("verify-vips")
def verify_vips_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    """The verdicts go on the cluster's VIP entries, as the real service records them."""
    cluster = view.cluster
    if not isinstance(output, list) or cluster is None:
        return
    verdicts = {(v.get("vip"), v.get("vip_type")): v.get("verification") for v in output if isinstance(v, dict)}
    for kind in ("api", "ingress"):
        for entry in cluster.get(f"{kind}_vips") or []:
            verdict = verdicts.get((entry.get("ip"), kind))
            if isinstance(entry, dict) and verdict and entry.get("verification") != verdict:
                entry["verification"] = verdict


def peer_entry(model: ClusterModel, host: dict[str, Any], nics: Callable[[Any], str | None]) -> str | None:
    """A peer's entry in connectivity-check's arguments, made once per inventory (150 polls list 1,000 hosts)."""
    entry: str | None = model.fact(host, "inventory", _Entry(str(host.get("id")), nics))
    return entry


class _Entry:
    """``nics`` as a deriver whose value is the peer's whole entry; it is remembered under ``nics``'s name."""

    def __init__(self, host_id: str, nics: Callable[[Any], str | None]) -> None:
        self.host_id, self.nics = host_id, nics
        self.__qualname__ = f"{nics.__qualname__}:entry"

    def __call__(self, inventory: Any) -> str | None:
        listed = self.nics(inventory)
        return None if listed is None else f'{{"host_id": {json.dumps(self.host_id)}, "nics": {listed}}}'
