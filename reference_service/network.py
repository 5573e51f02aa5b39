"""Network area of the reference service: the network steps' arguments, their replies, and the validations
that depend on them (assisted-service-api.md 4.2, 4.3, 5.3, 5.4).

The real service builds ``connectivity-check`` arguments from every other host's inventory, asks each host
to sweep its own /22-or-longer IPv4 subnets for free addresses, resolves the cluster's DNS names, and runs a
cluster monitor that computes "majority groups" from the hosts' connectivity reports. Here the groups are
computed when a host's validations are, from the reports stored on the hosts: same outcome, no background
task.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
from typing import Any

from reference_service.registry import (
    HostView,
    Outcome,
    is_sno,
    parse_json_field,
    reply_handler,
    step_arguments,
    validation,
)

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
def _cluster_name_domain(view: HostView) -> tuple[str, str] | None:
    cluster = view.cluster or {}
    name, base = cluster.get("name"), cluster.get("base_dns_domain")
    return (str(name), str(base)) if name and base else None


def machine_cidrs(cluster: dict[str, Any] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if not cluster:
        return []
    cidrs = [n.get("cidr") for n in cluster.get("machine_networks") or [] if isinstance(n, dict)]
    if not cidrs and cluster.get("machine_network_cidr"):
        cidrs = [cluster["machine_network_cidr"]]
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(str(c), strict=False))
        except ValueError:
            continue
    return out


def _vips(cluster: dict[str, Any] | None, kind: str) -> list[str]:
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


def effective_role(host: dict[str, Any]) -> str:
    role = host.get("role") or "auto-assign"
    if role == "auto-assign" and host.get("suggested_role"):
        role = host["suggested_role"]
    return str(role)


def _interface_addresses(inventory: dict[str, Any]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
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


def _host_label(host: dict[str, Any]) -> str:
    inv = parse_json_field(host, "inventory") or {}
    return str(host.get("requested_hostname") or inv.get("hostname") or host.get("id"))


# -- step arguments -----------------------------------------------------------------------------------------
def connectivity_params(view: HostView) -> list[dict[str, Any]]:
    """``connectivity-check-params``: every other host's NICs (name, MAC, addresses without prefix)."""
    params = []
    for other in sorted(view.others, key=lambda h: str(h.get("id"))):
        if other.get("status") in SKIP_CONNECTIVITY_STATES:
            continue
        inv = parse_json_field(other, "inventory")
        if not inv:
            continue
        nics = []
        for iface in inv.get("interfaces") or []:
            addresses = [c.split("/")[0] for c in (iface.get("ipv4_addresses") or [])
                         + (iface.get("ipv6_addresses") or []) if not _loopback(c)]
            if iface.get("type") == "device" and not addresses:
                continue  # lo, kept in inventories by ENABLE_VIRTUAL_INTERFACES: nothing to probe remotely
            nics.append({"name": iface.get("name", ""), "mac": iface.get("mac_address", ""),
                         "ip_addresses": addresses})
        params.append({"host_id": other["id"], "nics": nics})
    return params


@step_arguments("connectivity-check")
def connectivity_check_args(view: HostView) -> list[str] | None:
    params = connectivity_params(view)
    return [json.dumps(params)] if params else None


@step_arguments("free-network-addresses")
def free_addresses_args(view: HostView) -> list[str] | None:
    inv = view.inventory
    if not inv:
        return None
    networks: list[str] = []
    for iface in _interface_addresses(inv):
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
    names = _cluster_name_domain(view)
    if names is None:
        return None
    return [json.dumps({"domains": [{"domain_name": d} for d in dns_names(*names)]})]


@step_arguments("verify-vips")
def verify_vips_args(view: HostView) -> list[str] | None:
    vips = [{"vip": v, "vip_type": "api"} for v in _vips(view.cluster, "api")]
    vips += [{"vip": v, "vip_type": "ingress"} for v in _vips(view.cluster, "ingress")]
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
    names = _cluster_name_domain(view)
    if not is_day2(view) or names is None:
        return None
    cluster = view.cluster or {}
    address = cluster.get("api_vip_dnsname") or f"api.{names[0]}.{names[1]}"
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


reply_handler("connectivity-check")(_store("connectivity"))
reply_handler("domain-resolution")(_store("domain_name_resolutions"))
reply_handler("api-vip-connectivity-check")(_store("api_vip_connectivity"))


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
    cidrs = [c for c in machine_cidrs(cluster) if c.version == 4]
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
    if not isinstance(output, dict) or view.cluster is None or view.service is None:
        return
    cluster = view.service.store.get_cluster(view.cluster["id"]) or view.cluster
    cidrs = machine_cidrs(cluster)
    addresses = {kind: str(output.get(f"{kind}_vip_address") or "") for kind in ("api", "ingress")}
    if not all(any(_in(a, c) for c in cidrs) for a in addresses.values()):
        return
    for kind, address in addresses.items():
        cluster[f"{kind}_vips"] = [{"ip": address, "cluster_id": cluster["id"]}]
        cluster[f"_{kind}_vip_lease"] = output.get(f"{kind}_vip_lease") or ""
    view.service.store.save_cluster(cluster)


@reply_handler("verify-vips")
def verify_vips_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    """The verdicts go on the cluster's VIP entries, as the real service records them."""
    if not isinstance(output, list) or view.cluster is None or view.service is None:
        return
    cluster = view.service.store.get_cluster(view.cluster["id"]) or view.cluster
    verdicts = {(v.get("vip"), v.get("vip_type")): v.get("verification") for v in output if isinstance(v, dict)}
    changed = False
    for kind in ("api", "ingress"):
        for entry in cluster.get(f"{kind}_vips") or []:
            verdict = verdicts.get((entry.get("ip"), kind))
            if isinstance(entry, dict) and verdict and entry.get("verification") != verdict:
                entry["verification"] = verdict
                changed = True
    if changed:
        view.service.store.save_cluster(cluster)


# -- validations --------------------------------------------------------------------------------------------
@validation("machine-cidr-defined", CATEGORY)
def machine_cidr_defined(view: HostView) -> Outcome:
    if user_managed_networking(view.cluster):
        return "success", "No Machine Network CIDR needed: User Managed Networking"
    if machine_cidrs(view.cluster):
        return "success", "Machine Network CIDR is defined"
    if (view.cluster or {}).get("vip_dhcp_allocation"):
        return "failure", "Machine Network CIDR is undefined"
    return "failure", ("Machine Network CIDR is undefined; the Machine Network CIDR can be defined by setting "
                       "either the API or Ingress virtual IPs")


@validation("belongs-to-machine-cidr", CATEGORY)
def belongs_to_machine_cidr(view: HostView) -> Outcome:
    if is_day2(view):
        return "success", "No machine network CIDR validation needed: Day2 host"
    if user_managed_networking(view.cluster) and len(view.hosts) > 1:
        return "success", "No machine network CIDR validation needed: User Managed Networking"
    cidrs = machine_cidrs(view.cluster)
    inv = view.inventory
    if not inv or not cidrs:
        return "pending", "Missing inventory or machine network CIDR"
    addresses = _interface_addresses(inv)
    if all(any(a.ip in c for a in addresses) for c in cidrs):
        return "success", "Host belongs to all machine network CIDRs"
    return "failure", ("Host does not belong to machine network CIDRs. Verify that the host belongs to every "
                       "CIDR listed under machine networks")


def _reachable(report: dict[str, Any] | None, remote: dict[str, Any],
               cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Did ``report`` (one host's connectivity) reach ``remote`` inside ``cidr``: L2 for IPv4, L3 for IPv6."""
    if not report:
        return False
    entry = next((r for r in report.get("remote_hosts") or [] if r.get("host_id") == remote.get("id")), None)
    if entry is None:
        return False
    key = "l2_connectivity" if cidr.version == 4 else "l3_connectivity"
    for item in entry.get(key) or []:
        try:
            ip = ipaddress.ip_address(item.get("remote_ip_address", ""))
        except ValueError:
            continue
        if ip in cidr and item.get("successful"):
            return True
    return False


def in_majority_group(host_id: str, hosts: list[dict[str, Any]],
                      cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Is ``host_id`` in a group of more than half the hosts that all reach each other (both ways) in ``cidr``?

    Any such group counts, not one chosen "largest": while reports are being refreshed (a host was just
    cut off, say), two groups can tie, and a host must not fail because the tie went the other way.
    Exhaustive for clusters of up to 12 hosts (the usual case), greedy beyond.
    """
    reports = {h["id"]: parse_json_field(h, "connectivity") for h in hosts}
    by_id = {h["id"]: h for h in hosts}
    if host_id not in by_id:
        return False

    def linked(a: str, b: str) -> bool:
        return _reachable(reports[a], by_id[b], cidr) and _reachable(reports[b], by_id[a], cidr)

    neighbours = sorted(other for other in by_id if other != host_id and linked(host_id, other))
    needed = len(hosts) // 2  # members besides host_id for a group of more than half
    if len(neighbours) < needed:
        return False
    links = {(a, b) for a, b in itertools.combinations(neighbours, 2) if linked(a, b)}
    if len(hosts) <= 12:
        return any(all((a, b) in links for a, b in itertools.combinations(group, 2))
                   for group in itertools.combinations(neighbours, needed))
    members: list[str] = []
    for other in neighbours:
        if all((min(m, other), max(m, other)) in links for m in members):
            members.append(other)
    return len(members) >= needed


@validation("belongs-to-majority-group", CATEGORY)
def belongs_to_majority_group(view: HostView) -> Outcome:
    if is_day2(view):
        return "success", "Day2 host is not required to be connected to other hosts in the cluster"
    if len(view.hosts) == 1 and user_managed_networking(view.cluster):
        return "success", "Host has connectivity to the majority of hosts in the cluster"
    cidrs = machine_cidrs(view.cluster)
    if not cidrs or not view.host.get("connectivity"):
        return "pending", "Machine Network CIDR or Connectivity Majority Groups missing"
    hosts = [h for h in view.hosts if h.get("inventory")]
    if len(hosts) < 3:
        return "pending", "Not enough hosts in cluster to calculate connectivity groups"
    for cidr in cidrs:
        if not in_majority_group(view.host["id"], hosts, cidr):
            return "failure", "No connectivity to the majority of hosts in the cluster"
    return "success", "Host has connectivity to the majority of hosts in the cluster"


def _same_role_l3(view: HostView) -> tuple[str, list[tuple[str, dict[str, Any]]]] | None:
    """(role, [(remote host label, l3 entry)]) towards hosts of this host's role, or None when not checked."""
    role = effective_role(view.host)
    if is_day2(view) or len(view.hosts) == 1 or role not in NETWORK_REQUIREMENTS:
        return None
    report = parse_json_field(view.host, "connectivity") or {}
    peers = {h["id"]: h for h in view.others if effective_role(h) == role}
    entries = []
    for remote in report.get("remote_hosts") or []:
        peer = peers.get(remote.get("host_id"))
        if peer is not None:
            entries += [(_host_label(peer), e) for e in remote.get("l3_connectivity") or []]
    return role, entries


def _same_role_requirement(view: HostView, which: int, field: str, what: str, requirement: str) -> Outcome:
    """Requirement ``which`` (0 latency, 1 packet loss) on ``field`` towards hosts of the same role."""
    checked = _same_role_l3(view)
    if checked is None:
        return "success", f"{what} requirement has been satisfied."
    role, entries = checked
    if not view.host.get("connectivity"):
        return "pending", f"Missing {what.lower()} information"
    limit = NETWORK_REQUIREMENTS[role][which]
    over = sorted({label for label, e in entries if float(e.get(field) or 0) > limit})
    if not over:
        return "success", f"{what} requirement has been satisfied."
    bound = f"less than or equals {limit:g} ms" if which == 0 else f"{'=' if limit == 0 else '<='}{limit:g}%"
    between = f"{_host_label(view.host)} and {', '.join(over)}"
    return "failure", f"{requirement} of {bound} not met for connectivity between {between}."


@validation("sufficient-network-latency-requirement-for-role", CATEGORY)
def sufficient_latency(view: HostView) -> Outcome:
    return _same_role_requirement(view, 0, "average_rtt_ms", "Network latency", "Network latency requirement")


@validation("sufficient-packet-loss-requirement-for-role", CATEGORY)
def sufficient_packet_loss(view: HostView) -> Outcome:
    return _same_role_requirement(view, 1, "packet_loss_percentage", "Packet loss",
                                  "Packet loss percentage requirement")


def _address_families(cluster: dict[str, Any]) -> list[int]:
    """IP versions the cluster uses, from its machine, cluster and service networks (and VIPs)."""
    texts = [str(n.get("cidr")) for kind in ("machine_networks", "cluster_networks", "service_networks")
             for n in cluster.get(kind) or [] if isinstance(n, dict) and n.get("cidr")]
    texts += [cluster[k] for k in ("machine_network_cidr", "cluster_network_cidr", "service_network_cidr")
              if cluster.get(k)]
    texts += _vips(cluster, "api") + _vips(cluster, "ingress")
    versions = set()
    for text in texts:
        try:
            versions.add(ipaddress.ip_network(text, strict=False).version)
        except ValueError:
            continue
    return sorted(versions)


@validation("non-overlapping-subnets", CATEGORY)
def non_overlapping_subnets(view: HostView) -> Outcome | None:
    """Two NICs in one subnet (or in nested ones) make the node's routing, and so its cluster traffic,
    ambiguous. Link-local and loopback networks are on every NIC by nature and are left out."""
    inv = parse_json_field(view.host, "inventory")
    if not inv:
        return "pending", "Missing inventory"
    if not view.cluster:
        return None
    for version in _address_families(view.cluster):
        networks = []
        for iface in inv.get("interfaces") or []:
            key = "ipv4_addresses" if version == 4 else "ipv6_addresses"
            for cidr in iface.get(key) or []:
                try:
                    net = ipaddress.ip_interface(cidr).network
                except ValueError:
                    continue
                if not (net.is_link_local or net.is_loopback):
                    networks.append((net, str(iface.get("name", ""))))
        for (net1, nic1), (net2, nic2) in itertools.combinations(networks, 2):
            if net1 == net2:
                return "failure", (f"Address networks are overlapping: Address network {net1} appears on multiple "
                                   f"interfaces [{nic1}, {nic2}]")
            if net1.overlaps(net2):
                return "failure", (f"Address networks are overlapping: Address networks {net1} in interface "
                                   f"{nic1} and {net2} in interface {nic2} overlap")
    return "success", "Host subnets are not overlapping"


@validation("no-iscsi-nic-belongs-to-machine-cidr", CATEGORY)
def no_iscsi_nic_in_machine_network(view: HostView) -> Outcome | None:
    """The NIC that carries an iSCSI root disk must stay out of the machine network: the cluster's network
    configuration would take it over and cut the node off its own root disk."""
    inv = parse_json_field(view.host, "inventory")
    if not inv:
        return "pending", "Missing inventory"
    disk_id = view.host.get("installation_disk_id")
    disk = next((d for d in inv.get("disks") or [] if disk_id and d.get("id") == disk_id), None)
    if not disk or disk.get("drive_type") != "iSCSI":
        return "success", "Installation disk is not iSCSI"
    try:
        ip = ipaddress.ip_address(str((disk.get("iscsi") or {}).get("host_ip_address")))
    except ValueError:
        return "error", "Cannot find the network interface connected to the iSCSI disk"
    if any(ip in cidr for cidr in machine_cidrs(view.cluster)):
        return "failure", "Network interface connected to iSCSI disk cannot belong to machine network CIDRs"
    return "success", "Network interface connected to iSCSI disk does not belong to machine network CIDRs"


@validation("ignition-downloadable", CATEGORY)
def ignition_downloadable(view: HostView) -> Outcome | None:
    """Day-2 only: a host joining a running cluster boots from the Ignition its API serves, so it must be able
    to download it (the api-vip-connectivity-check step tries)."""
    if not view.cluster or not is_day2(view):
        return None
    raw = view.host.get("api_vip_connectivity")
    if not raw:
        return "pending", "Ignition is not yet available, pending API connectivity"
    try:
        report = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return "error", "Internal error - failed to parse agent API connectivity response"
    if report.get("is_success"):
        return "success", "Ignition is downloadable"
    if not report.get("url"):
        return "failure", ("This host has failed to download the ignition file from the cluster, please ensure the "
                           "host can reach the cluster")
    return "failure", (f"This host has failed to download the ignition file from {report['url']} with the following "
                       f"error: {report.get('download_error', '')}. Please ensure the host can reach this URL")


@validation("has-default-route", CATEGORY)
def has_default_route(view: HostView) -> Outcome:
    inv = view.inventory
    routes = (inv or {}).get("routes") or []
    if not inv or not routes:
        return "pending", "Missing default routing information."
    for route in routes:
        dest = route.get("destination")
        if dest in ("0.0.0.0", "::") or dest in ("0.0.0.0/0", "::/0"):
            return "success", "Host has been configured with at least one default route."
    return "failure", "Host has not yet been configured with a default route."


def _resolution(view: HostView, name: str) -> dict[str, Any] | None:
    data = parse_json_field(view.host, "domain_name_resolutions") or {}
    return next((r for r in data.get("resolutions") or [] if r.get("domain_name") == name), None)


def _addresses(resolution: dict[str, Any] | None) -> list[str]:
    if not resolution:
        return []
    return [str(a) for a in (resolution.get("ipv4_addresses") or []) + (resolution.get("ipv6_addresses") or [])]


def _domain_validation(view: HostView, subdomain: str, target: str) -> Outcome:
    """The real service's rule: only user-managed networking needs the names in DNS (managed networking serves
    them itself, and so does the dnsmasq of a day-1 single-node cluster), and then they must resolve, but not
    to this host's own addresses (they name load balancers). A host that has not resolved yet is pending here,
    where the real service reports an error."""
    cluster = view.cluster or {}
    base = cluster.get("base_dns_domain")
    printable = f"{subdomain}.{cluster.get('name')}.{base}" if base else target
    not_needed = "success", f"Domain name resolution for the {printable} domain was successful or not required"
    if not user_managed_networking(view.cluster) or (is_sno(view.cluster) and not is_day2(view)):
        return not_needed
    if not base:
        return "error", (f"DNS validation for the {target} domain cannot be completed because the cluster does not "
                         f"have base_dns_domain set. Please update the cluster with the correct base_dns_domain")
    if not view.host.get("domain_name_resolutions"):
        return "pending", f"Domain name resolution for the {printable} domain has not been performed yet"
    probe = printable.replace("*.apps", f"{APPS_PROBE}.apps", 1)
    addresses = _addresses(_resolution(view, probe))
    if not addresses:
        return "failure", (f"Couldn't resolve domain name {printable} on the host. To continue installation, create "
                           f"the necessary DNS entries to resolve this domain name to your cluster's {target} IP "
                           f"address")
    own = {str(i.ip) for i in _interface_addresses(parse_json_field(view.host, "inventory") or {})}
    for address in addresses:
        if address in own:
            return "failure", (f"Domain {printable} must not point at {address} as it is the API address of this "
                               f"host. This domain must instead point at the IP address of a load balancer when "
                               f"using user managed networking in a multi control-plane node cluster")
    return not_needed


@validation("api-domain-name-resolved-correctly", CATEGORY)
def api_domain(view: HostView) -> Outcome:
    return _domain_validation(view, "api", "API load balancer")


@validation("api-int-domain-name-resolved-correctly", CATEGORY)
def api_int_domain(view: HostView) -> Outcome:
    return _domain_validation(view, "api-int", "internal API load balancer")


@validation("apps-domain-name-resolved-correctly", CATEGORY)
def apps_domain(view: HostView) -> Outcome:
    return _domain_validation(view, "*.apps", "application ingress")


@validation("dns-wildcard-not-configured", CATEGORY)
def dns_wildcard_not_configured(view: HostView) -> Outcome:
    """Both spellings of a name that must not exist: the dotted one catches a wildcard record, the relative one
    a DHCP-provided search domain that completes it into some other zone's wildcard."""
    if is_day2(view):
        return "success", "DNS wildcard check is not required for day2"
    names = _cluster_name_domain(view)
    if names is None or not view.host.get("domain_name_resolutions"):
        return "pending", "DNS wildcard check cannot be performed yet because the host has not yet performed DNS " \
                          "resolution"
    name, base = names
    relative = f"{WILDCARD_PROBE}.{name}.{base}"
    checks = (
        (relative + ".", f"DNS wildcard configuration was detected for domain *.{name}.{base} - the installation "
                         "will not be able to complete while this record exists. Please remove it to proceed. "
                         "The domain resolves to addresses {}"),
        (relative, f"Unexpected domain name resolution was detected for the relative domain name with the "
                   f"sub-domain *.{name}.{base} despite the fact that no resolution exists for a Fully Qualified "
                   f"Domain Name (FQDN) with same sub-domain. This is usually a sign of DHCP-provided domain-search "
                   f"configuration. The installation will not be able to complete with this configuration in "
                   f"place. Please remove it to proceed. The relative domain name resolves to addresses {{}}"),
    )
    for probe, message in checks:
        found = _resolution(view, probe)
        if found is None:
            return "error", ("Internal error - DNS wildcard check cannot be performed because the DNS validation "
                             "result doesn't contain the wildcard domain")
        if _addresses(found):
            return "failure", message.format(", ".join(_addresses(found)))
    return "success", "DNS wildcard check was successful"


@validation("mtu-valid", CATEGORY, blocking=False)
def mtu_valid(view: HostView) -> Outcome:
    report = parse_json_field(view.host, "connectivity")
    if not report:
        return "pending", "Missing connectivity information to check MTU"
    labels = {h["id"]: _host_label(h) for h in view.others}
    broken = []
    for remote in report.get("remote_hosts") or []:
        for entry in remote.get("mtu_report") or []:
            if not entry.get("mtu_successful"):
                broken.append(f"{entry.get('outgoing_nic')} -> {entry.get('remote_ip_address')} "
                              f"({labels.get(remote.get('host_id'), remote.get('host_id'))})")
    if broken:
        return "failure", ("MTU is broken: packets of the interface's MTU do not get through to "
                           + "; ".join(broken) + ". Check the MTU of the host's interfaces and of the network")
    return "success", "MTU is ok"
