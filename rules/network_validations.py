"""The real service's network validations: machine networks, majority groups, latency and packet loss per
role, overlapping subnets, iSCSI NICs, Ignition download, default route, DNS names and wildcards, MTU.

What these read of the other hosts comes from the cluster's model (``view.model``, ``cluster_model``): the
majority groups (by the real service's rule, ``majority``), the peers' roles and names, and what each report
holds that a requirement could fail on, derived once per report.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from rules.documents import HostView, Outcome, deriver, effective_role, host_name, is_sno
from rules.network import (
    APPS_PROBE,
    CATEGORY,
    NETWORK_REQUIREMENTS,
    WILDCARD_PROBE,
    cluster_name_domain,
    cluster_vips,
    interface_addresses,
    is_day2,
    user_managed_networking,
)
from rules.registry import validation


@validation("machine-cidr-defined", CATEGORY)
def machine_cidr_defined(view: HostView) -> Outcome:
    if user_managed_networking(view.cluster):
        return "success", "No Machine Network CIDR needed: User Managed Networking"
    if (view.cluster or {}).get("kind") == "AddHostsCluster":
        return "success", "No Machine Network CIDR needed: Day2 cluster"
    if view.machine_networks:
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
    cidrs = view.machine_networks
    inv = view.inventory
    if not inv or not cidrs:
        return "pending", "Missing inventory or machine network CIDR"
    addresses = interface_addresses(inv)
    if all(any(a.ip in c for a in addresses) for c in cidrs):
        return "success", "Host belongs to all machine network CIDRs"
    return "failure", ("Host does not belong to machine network CIDRs. Verify that the host belongs to every "
                       "CIDR listed under machine networks")


@validation("belongs-to-majority-group", CATEGORY)
def belongs_to_majority_group(view: HostView) -> Outcome:
    if is_day2(view):
        return "success", "Day2 host is not required to be connected to other hosts in the cluster"
    if len(view.hosts) == 1 and user_managed_networking(view.cluster):
        return "success", "Host has connectivity to the majority of hosts in the cluster"
    cidrs = view.machine_networks
    if not cidrs or not view.host.get("connectivity"):
        return "pending", "Machine Network CIDR or Connectivity Majority Groups missing"
    if view.model.inventory_hosts < 3:
        return "pending", "Not enough hosts in cluster to calculate connectivity groups"
    for cidr in cidrs:
        member = view.model.in_majority(view.host["id"], cidr)
        if member is None:  # no group computed for this CIDR yet: pending, as the real service's validator
            return "pending", "Machine Network CIDR or Connectivity Majority Groups missing"
        if not member:
            return "failure", "No connectivity to the majority of hosts in the cluster"
    return "success", "Host has connectivity to the majority of hosts in the cluster"


#: The least any role tolerates: l3 entries within both can fail no role's requirement, so they are not kept.
_MIN_LATENCY = min(limit for limit, _ in NETWORK_REQUIREMENTS.values())
_MIN_LOSS = min(limit for _, limit in NETWORK_REQUIREMENTS.values())
Flagged = list[tuple[Any, dict[str, Any]]]


@deriver("connectivity")
def _flagged(report: Any) -> tuple[Flagged, Flagged] | None:
    """(l3 entries over the least latency or loss any role allows, broken MTU entries), each with its remote
    host id; None without a report. A host's report lists every peer (250 KB at 1,000 hosts) and is read on
    every evaluation, so what the checks need is derived once per report (``view.model.fact``)."""
    if not report or not isinstance(report, dict):
        return None
    over: Flagged = []
    broken: Flagged = []
    for remote in report.get("remote_hosts") or []:
        peer = remote.get("host_id")
        over += [(peer, e) for e in remote.get("l3_connectivity") or [] if _over_least(e)]
        broken += [(peer, e) for e in remote.get("mtu_report") or [] if not e.get("mtu_successful")]
    return over, broken


def _over_least(entry: dict[str, Any]) -> bool:
    try:
        return float(entry.get("average_rtt_ms") or 0) > _MIN_LATENCY or \
            float(entry.get("packet_loss_percentage") or 0) > _MIN_LOSS
    except (TypeError, ValueError):
        return True  # kept, so the requirement check meets it as it did


def _same_role_l3(view: HostView) -> tuple[str, list[tuple[str, dict[str, Any]]]] | None:
    """(role, [(remote host label, l3 entry)]) towards hosts of this host's role, or None when not checked.
    Only entries that could fail some role's requirement are listed (``_flagged``)."""
    role = effective_role(view.host)
    if is_day2(view) or len(view.hosts) == 1 or role not in NETWORK_REQUIREMENTS:
        return None
    flagged = view.model.fact(view.host, "connectivity", _flagged)
    own, entries = view.host.get("id"), []
    for peer, entry in flagged[0] if flagged else []:
        known = view.model.peer(peer, of=own) if peer != own else None  # (of: due when it changes)
        if known is not None and known[0] == role:
            entries.append((known[1], entry))
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
    between = f"{host_name(view.host)} and {', '.join(over)}"
    return "failure", f"{requirement} of {bound} not met for connectivity between {between}."


@validation("sufficient-network-latency-requirement-for-role", CATEGORY)
def sufficient_latency(view: HostView) -> Outcome:
    return _same_role_requirement(view, 0, "average_rtt_ms", "Network latency", "Network latency requirement")


@validation("sufficient-packet-loss-requirement-for-role", CATEGORY)
def sufficient_packet_loss(view: HostView) -> Outcome:
    return _same_role_requirement(view, 1, "packet_loss_percentage", "Packet loss",
                                  "Packet loss percentage requirement")


def _address_families(view: HostView, cluster: dict[str, Any]) -> list[int]:
    """IP versions the cluster uses, from its machine, cluster and service networks (and VIPs)."""
    texts = [str(n.get("cidr")) for kind in ("machine_networks", "cluster_networks", "service_networks")
             for n in cluster.get(kind) or [] if isinstance(n, dict) and n.get("cidr")]
    texts += [cluster[k] for k in ("machine_network_cidr", "cluster_network_cidr", "service_network_cidr")
              if cluster.get(k)]
    texts += cluster_vips(cluster, "api") + cluster_vips(cluster, "ingress")
    families: list[int] = view.model.parsed(tuple(texts), _families)
    return families


def _families(texts: tuple[str, ...]) -> list[int]:
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
    inv = view.json("inventory")
    if not inv:
        return "pending", "Missing inventory"
    if not view.cluster:
        return None
    for version in _address_families(view, view.cluster):
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
    inv = view.json("inventory")
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
    if any(ip in cidr for cidr in view.machine_networks):
        return "failure", "Network interface connected to iSCSI disk cannot belong to machine network CIDRs"
    return "success", "Network interface connected to iSCSI disk does not belong to machine network CIDRs"


@validation("ignition-downloadable", CATEGORY)
def ignition_downloadable(view: HostView) -> Outcome | None:
    """Day-2 only: a host joining a running cluster boots from the Ignition its API serves, so it must be able
    to download it (the api-vip-connectivity-check step tries)."""
    if not view.cluster or not is_day2(view):
        return None
    if not view.host.get("api_vip_connectivity"):
        return "pending", "Ignition is not yet available, pending API connectivity"
    report = view.json("api_vip_connectivity")
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
    data = view.json("domain_name_resolutions") or {}
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
    own = {str(i.ip) for i in interface_addresses(view.json("inventory") or {})}
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
    names = cluster_name_domain(view)
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
    flagged = view.model.fact(view.host, "connectivity", _flagged)
    if flagged is None:
        return "pending", "Missing connectivity information to check MTU"
    own = view.host.get("id")
    broken = [f"{entry.get('outgoing_nic')} -> {entry.get('remote_ip_address')} "
              f"({peer if peer == own else view.model.label(peer, of=own)})" for peer, entry in flagged[1]]
    if broken:
        return "failure", ("MTU is broken: packets of the interface's MTU do not get through to "
                           + "; ".join(broken) + ". Check the MTU of the host's interfaces and of the network")
    return "success", "MTU is ok"
