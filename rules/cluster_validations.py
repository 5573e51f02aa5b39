"""The cluster's own validations, as the real service's cluster monitor derives them.

The real service fills a cluster's ``validations_info`` (network, hosts-data, configuration, operators) on
every monitor pass and moves the cluster between pending-for-input, insufficient and ready by them; before
that it assigns the machine network when it can (``machine_network``). Functions of the cluster document, its
hosts and its model (``cluster_model``), which derives what they read of the hosts once per report.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from rules.cluster_model import ClusterModel
from rules.documents import is_sno
from rules.machine_network import Network, cluster_networks, service_networks, vip_network
from rules.network import cluster_vips, user_managed_networking

Results = dict[str, list[dict[str, str]]]

#: The real service's defaults for a new cluster's networks (and what clients expect to read back).
DEFAULT_CLUSTER_NETWORK = "10.128.0.0/14"
DEFAULT_HOST_PREFIX = 23
DEFAULT_SERVICE_NETWORK = "172.30.0.0/16"
#: Host statuses counted as ready to install by all-hosts-are-ready-to-install.
READY_HOST_STATES = ("known", "preparing-for-installation", "preparing-successful")
#: Cluster validations whose failure keeps a cluster in pending-for-input (the user must supply something),
#: as the real state machine's ``isPendingUserInput`` set; any other failure makes it insufficient.
PENDING_INPUT = ("machine-cidr-defined", "cluster-cidr-defined", "service-cidr-defined", "api-vips-defined",
                 "ingress-vips-defined", "dns-domain-defined", "pull-secret-set")
#: Operators whose requirement validations the real service always lists; none is offered here, so each
#: reports itself disabled, as the real one does for an operator the cluster does not use.
OPERATORS = ("odf", "lso", "cnv", "lvm", "mce", "mtv", "osc", "node-feature-discovery", "nvidia-gpu",
             "pipelines", "servicemesh", "serverless", "openshift-ai", "authorino", "nmstate", "amd-gpu", "kmm")


def _has_inventories(hosts: list[dict[str, Any]]) -> bool:
    return any(h.get("inventory") for h in hosts)


def _machine_cidr_defined(cluster: dict[str, Any], hosts: list[dict[str, Any]], model: ClusterModel) -> tuple[str, str]:
    if user_managed_networking(cluster) and not is_sno(cluster):
        return "success", "No Machine Network CIDR needed: User Managed Networking"
    if model.machine_networks(cluster):
        return "success", "The Machine Network CIDR is defined."
    if not _has_inventories(hosts):
        return "pending", "Hosts have not been discovered yet"
    if cluster.get("vip_dhcp_allocation"):
        return "failure", ("The Machine Network CIDR is undefined; setting the Machine Network CIDR initiates "
                           "the VIPs DHCP lease allocation.")
    if is_sno(cluster):
        return "failure", ("The Machine Network CIDR is undefined; Setting Machine Network CIDR is required for "
                           "single node cluster")
    return "failure", ("The Machine Network CIDR is undefined; the Machine Network CIDR can be defined by setting "
                       "either the API or Ingress virtual IPs.")


def _machine_equals_calculated(cluster: dict[str, Any], hosts: list[dict[str, Any]],
                               model: ClusterModel) -> tuple[str, str]:
    if user_managed_networking(cluster):
        return "success", "The Cluster Machine CIDR is not required: User Managed Networking"
    api, ingress = cluster_vips(cluster, "api"), cluster_vips(cluster, "ingress")
    if not api and not ingress:
        return "pending", "The Machine Network CIDR, API virtual IPs, or Ingress virtual IPs are undefined."
    if not _has_inventories(hosts):
        return "pending", "Hosts have not been discovered yet"
    problems = []
    current = model.machine_networks(cluster)
    for index, vip in enumerate(api or ingress):
        net = vip_network(vip, hosts, model)
        if net is None:
            problems.append(f"No suitable matching CIDR found for VIP {vip}")
        elif index < len(current) and current[index] != net:
            problems.append(f"The Cluster Machine CIDR {current[index]} is different than the calculated CIDR {net}.")
    if problems:
        return "failure", "; ".join(problems)
    return "success", "The Cluster Machine CIDR is equivalent to the calculated CIDR."


def _free_verdict(cluster: dict[str, Any], hosts: list[dict[str, Any]], kind: str, vip: str, net: Network,
                  model: ClusterModel) -> str:
    """succeeded, failed or unverified: the verify-vips verdict, else the hosts' free-address lists (each
    derived once per report by the model: 1,000 lists of 700 addresses were decoded per evaluation)."""
    for entry in cluster.get(f"{kind}_vips") or []:
        if isinstance(entry, dict) and entry.get("ip") == vip and entry.get("verification") in ("succeeded",
                                                                                                 "failed"):
            return str(entry["verification"])
    scanned, network = False, str(net)
    wanted = _FreeOf(tuple(cluster_vips(cluster, "api") + cluster_vips(cluster, "ingress")))
    for host in hosts:
        if not host.get("free_addresses"):
            continue  # (no scan yet: most hosts of a discovery)
        free = model.fact(host, "free_addresses", wanted).get(network)
        if free is not None:
            if vip in free:
                return "succeeded"
            scanned = True
    return "failed" if scanned else "unverified"


class _FreeOf:
    """A free-network-addresses report as network -> which of the cluster's VIPs it lists free: the model keeps
    that, not the report's 700 addresses per host (it is derived again, once, when the VIPs change)."""

    def __init__(self, vips: tuple[str, ...]) -> None:
        self.vips = frozenset(vips)
        self.__qualname__ = f"_FreeOf:{','.join(sorted(self.vips))}"

    def __call__(self, scans: Any) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for scan in scans if isinstance(scans, list) else []:
            if isinstance(scan, dict):
                network = str(scan.get("network"))
                listed = self.vips.intersection(str(a) for a in scan.get("free_addresses") or [])
                out[network] = out.get(network, frozenset()) | listed
        return out


def _vips(cluster: dict[str, Any], hosts: list[dict[str, Any]], kind: str,
          model: ClusterModel) -> list[tuple[str, str, str]]:
    name = "API" if kind == "api" else "Ingress"
    vips = cluster_vips(cluster, kind)
    if user_managed_networking(cluster):
        defined = valid = ("success", f"{name} virtual IPs are not required: User Managed Networking")
    elif is_sno(cluster):
        defined = valid = ("success", f"{name} virtual IPs are not required: SNO")
    else:
        if vips:
            defined = ("success", f"{name} virtual IPs are defined.")
        elif cluster.get("vip_dhcp_allocation"):
            defined = ("failure", f"{name} virtual IPs are undefined; after the Machine Network CIDR has been "
                                  f"defined, {name} virtual IPs are received from a DHCP lease allocation task "
                                  "which may take up to 2 minutes.")
        else:
            defined = ("failure", f"{name} virtual IPs are undefined and must be provided.")
        valid = _vips_valid(cluster, hosts, kind, name, vips, model)
    return [(f"{kind}-vips-defined", *defined), (f"{kind}-vips-valid", *valid)]


def _vips_valid(cluster: dict[str, Any], hosts: list[dict[str, Any]], kind: str, name: str,
                vips: list[str], model: ClusterModel) -> tuple[str, str]:
    if not vips:
        return "pending", f"{name} virtual IPs are undefined."
    cidrs = model.machine_networks(cluster)
    if not _has_inventories(hosts) or not cidrs:
        return "pending", "Hosts have not been discovered yet"
    label = f"{name.lower()} vips"
    problems, failed = [], False
    for index, vip in enumerate(vips):
        net = cidrs[min(index, len(cidrs) - 1)]
        try:
            address = ipaddress.ip_address(vip)
        except ValueError:
            problems.append(f"{label} <{vip}> is not a valid IP address")
            failed = True
            continue
        if address.version != net.version or address not in net:
            problems.append(f"{label} <{vip}> does not belong to machine-network-cidr <{net}>")
            failed = True
        elif address == net.broadcast_address:
            problems.append(f"{label} <{vip}> is the broadcast address of machine-network-cidr <{net}>")
            failed = True
        else:
            verdict = _free_verdict(cluster, hosts, kind, vip, net, model)
            if verdict == "failed":
                problems.append(f"{label} <{vip}> is already in use in cidr {net}")
                failed = True
            elif verdict == "unverified":
                problems.append(f"{label} <{vip}> are not verified yet.")
                failed = True
    if failed:
        return "failure", ";".join(problems)
    return "success", f"{label} {', '.join(vips)} belongs to the Machine CIDR and is not in use."


def _overlaps(cluster: dict[str, Any], model: ClusterModel) -> tuple[str, str]:
    machines, clusters = model.machine_networks(cluster), cluster_networks(cluster, model)
    services = service_networks(cluster, model)
    if not clusters or not services or (not machines and not user_managed_networking(cluster)):
        what = "Cluster Network, Service Network" if user_managed_networking(cluster) else \
            "Machine Network, Cluster Network, Service Network"
        return "pending", f"At least one of the CIDRs ({what}) is undefined."
    named = [("machine network", n) for n in machines] + [("cluster network", n) for n in clusters] + \
        [("service network", n) for n in services]
    for i, (kind_a, a) in enumerate(named):
        for kind_b, b in named[i + 1:]:
            if a.version == b.version and a.overlaps(b):
                return "failure", f"CIDRS Overlapping: {kind_a} {a} and {kind_b} {b} overlap."
    return "success", "No CIDRS are overlapping."


def _prefix(cluster: dict[str, Any], model: ClusterModel) -> tuple[str, str]:
    clusters = cluster_networks(cluster, model)
    if not clusters:
        return "pending", "The Cluster Network CIDR is undefined."
    entries = [n for n in cluster.get("cluster_networks") or [] if isinstance(n, dict)]
    prefix = int((entries[0].get("host_prefix") if entries else cluster.get("cluster_network_host_prefix"))
                 or DEFAULT_HOST_PREFIX)
    net = clusters[0]
    if user_managed_networking(cluster) is False and prefix < net.prefixlen:
        return "failure", f"Invalid Cluster Network prefix: Host prefix, now {prefix}, must be greater than " \
                          f"or equal to the network prefix {net.prefixlen}."
    if net.version == 4 and prefix > 30:
        return "failure", f"Invalid Cluster Network prefix: Host prefix, now {prefix}, must be less than or equal " \
                          "to 30 to allow at least 4 addresses"
    return "success", "The Cluster Network prefix is valid."


def _masters(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> tuple[str, str]:
    wanted = 1 if is_sno(cluster) else int(cluster.get("control_plane_count") or 3)
    masters = [h for h in hosts if h.get("role") == "master"]
    workers = [h for h in hosts if h.get("role") == "worker"]
    for host in hosts:
        if host.get("role") not in ("master", "worker", "arbiter"):
            (masters if len(masters) < wanted and host.get("suggested_role") != "worker" else workers).append(host)
    if len(masters) == wanted and not (wanted == 1 and workers):
        return "success", "The cluster has the exact amount of dedicated control plane nodes."
    if wanted == 1:
        return "failure", "Single-node clusters must have a single control plane node and no workers."
    return "failure", (f"The cluster must have exactly {wanted} dedicated control plane nodes. Add or remove hosts, "
                       "or change their roles configurations to meet the requirement.")


def cluster_validations(cluster: dict[str, Any], hosts: list[dict[str, Any]],
                        model: ClusterModel | None = None) -> Results:
    """Every cluster validation, by category, with the real service's ids and messages; what they read of the
    hosts and the networks is derived once by ``model``, the cluster's (a model of their own when none)."""
    model = model if model is not None else ClusterModel()
    network: list[tuple[str, str, str]] = [
        ("machine-cidr-defined", *_machine_cidr_defined(cluster, hosts, model)),
        ("cluster-cidr-defined", *(("success", "The Cluster Network CIDR is defined.")
                                   if cluster_networks(cluster, model)
                                   else ("failure", "The Cluster Network CIDR is undefined."))),
        ("service-cidr-defined", *(("success", "The Service Network CIDR is defined.")
                                   if service_networks(cluster, model)
                                   else ("failure", "The Service Network CIDR is undefined."))),
        ("no-cidrs-overlapping", *_overlaps(cluster, model)),
        ("networks-same-address-families", *_families(cluster, model)),
        ("network-prefix-valid", *_prefix(cluster, model)),
        ("machine-cidr-equals-to-calculated-cidr", *_machine_equals_calculated(cluster, hosts, model)),
        *_vips(cluster, hosts, "api", model),
        *_vips(cluster, hosts, "ingress", model),
        ("dns-domain-defined", *(("success", "The base domain is defined.") if cluster.get("base_dns_domain")
                                 else ("failure", "The base domain is undefined and must be provided."))),
        ("ntp-server-configured", "success", "No ntp problems found"),
        ("network-type-valid", *_network_type(cluster)),
    ]
    hosts_data = [
        ("all-hosts-are-ready-to-install",
         *(("success", "All hosts in the cluster are ready to install.")
           if all(h.get("status") in READY_HOST_STATES for h in hosts)
           else ("failure", "The cluster has hosts that are not ready to install."))),
        ("sufficient-masters-count", *_masters(cluster, hosts)),
    ]
    configuration = [
        ("pull-secret-set", *(("success", "The pull secret is set.") if cluster.get("pull_secret_set")
                              else ("failure", "The pull secret is not set."))),
        ("platform-requirements-satisfied", "success", "Platform requirements satisfied"),
    ]
    operators = [(f"{name}-requirements-satisfied", "success", f"{name} is disabled") for name in OPERATORS]

    def out(items: list[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [{"id": i, "status": s, "message": m} for i, s, m in items]

    return {"network": out(network), "hosts-data": out(hosts_data), "configuration": out(configuration),
            "operators": out(operators)}


def _families(cluster: dict[str, Any], model: ClusterModel) -> tuple[str, str]:
    clusters, services = cluster_networks(cluster, model), service_networks(cluster, model)
    machines = model.machine_networks(cluster)
    if not clusters or not services:
        return "pending", "At least one of the CIDRs (Cluster Network, Service Network) is undefined."
    if {n.version for n in clusters} != {n.version for n in services}:
        return "failure", "Address families of networks (ServiceNetworks, ClusterNetworks) are not the same."
    if machines and {n.version for n in machines} != {n.version for n in clusters}:
        return "failure", "Address families of networks (MachineNetworks, ServiceNetworks, ClusterNetworks) are " \
                          "not the same."
    return "success", "Same address families for all networks."


def _network_type(cluster: dict[str, Any]) -> tuple[str, str]:
    kind = cluster.get("network_type") or "OVNKubernetes"
    if kind not in ("OpenShiftSDN", "OVNKubernetes", "Cilium", "Calico", "CiscoACI", "None"):
        return "failure", ("The network type is not valid; the valid network types are OpenShiftSDN, "
                           "OVNKubernetes, Cilium, Calico, CiscoACI, or None")
    if kind == "OpenShiftSDN" and is_sno(cluster):
        return "failure", "Control Plane Count '1' (SNO) is not supported by OpenShiftSDN; use another network " \
                          "type instead"
    return "success", "The cluster has a valid network type"


def failing(results: Results) -> list[dict[str, str]]:
    return [r for rs in results.values() for r in rs if r["status"] in ("failure", "pending", "error")]


def status_by_validations(results: Results) -> tuple[str, str] | None:
    """pending-for-input or insufficient (with the real service's info) when a validation fails, else None."""
    bad = failing(results)
    if not bad:
        return None
    if any(r["id"] in PENDING_INPUT for r in bad):
        return "pending-for-input", "User input required"
    return "insufficient", "Cluster is not ready for install"


def encode(results: Results) -> str:
    return json.dumps(results)
