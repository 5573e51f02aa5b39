"""The host and cluster state machines of the real service, as pure functions over documents.

Which steps each host state issues, which status a host's validations put it in, what a re-registration does
to a host, and when a cluster moves on. The orchestrator calls these and applies the outcome (status events,
saving); it follows the real service (assisted-service-api.md sections 3 to 6), with one simplification:
where the real service refreshes states on an 8 s monitor tick, this one refreshes a host whenever something
about it changes (a poll, a reply, a user action), which makes it deterministic and fast in tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.errors import ServiceRefusal
from rules import cluster_validations, machine_network
from rules.cluster_model import ClusterModel
from rules.documents import is_sno
from rules.events import validation_changes

if TYPE_CHECKING:
    from rules.registry import Validation

#: Seconds without a poll after which a host is disconnected (HOST_MAX_DISCONNECTION_TIME).
DISCONNECTION_TIMEOUT = 180.0
PRE_INSTALL = {"discovering", "known", "insufficient", "pending-for-input", "disconnected"}
UNBOUND = {"discovering-unbound", "known-unbound", "insufficient-unbound", "disconnected-unbound"}
STATUS_INFO = {
    "discovering": "Waiting for host to send hardware details",
    "discovering-unbound": "Waiting for host to send hardware details",
    "known": "Host is ready to be installed",
    "known-unbound": "Host is ready to be bound to a cluster",
    "disconnected": "Host has stopped communicating with the installation service",
    "disconnected-unbound": "Host has stopped communicating with the installation service",
    "preparing-for-installation": "Host is preparing for installation",
    "preparing-successful": "Host finished successfully to prepare for installation",
    "installing": "Installation is in progress",
    "installed": "Done",
}
_DISCOVERY_STEPS = [
    "inventory", "connectivity-check", "tang-connectivity-check", "free-network-addresses",
    "dhcp-lease-allocate", "ntp-synchronizer", "domain-resolution", "verify-vips",
    "api-vip-connectivity-check",  # (day 2 only: its builder skips the others)
]
#: Host status -> the step types issued to it, in order, as the real service's instruction manager (day-1,
#: bound hosts). Steps whose argument builder returns None (or has none registered) are left out.
STATE_STEPS: dict[str, list[str]] = {
    "discovering": ["inventory"],
    "known": [
        "connectivity-check", "tang-connectivity-check", "free-network-addresses", "dhcp-lease-allocate",
        "inventory", "ntp-synchronizer", "domain-resolution", "verify-vips", "api-vip-connectivity-check",
    ],
    "insufficient": list(_DISCOVERY_STEPS),
    "pending-for-input": list(_DISCOVERY_STEPS),
    "disconnected": ["inventory"],
    "preparing-for-installation": [
        "dhcp-lease-allocate", "installation-disk-speed-check", "container-image-availability",
    ],
    # the native installation: the image, then the reboot (see rules/install.py)
    "installing": ["write-image", "reboot"],
    "installing-in-progress": ["write-image", "reboot"],
    "error": ["logs-gather", "stop-installation"],
    "cancelled": ["logs-gather", "stop-installation"],
    # hosts of an infra-env with no cluster
    "discovering-unbound": ["inventory", "ntp-synchronizer"],
    "insufficient-unbound": ["inventory", "ntp-synchronizer"],
    "known-unbound": ["inventory", "ntp-synchronizer"],
    "disconnected-unbound": ["inventory"],
}
#: Statuses polled less often (120 s in the real service) and those told to exit.
SLOW_STATES = {"disconnected", "disconnected-unbound", "error", "cancelled", "disabled", "resetting"}
SLOW_POLL_SECONDS = 120
EXIT_STATES = {"binding", "unbinding", "unbinding-pending-user-action"}
#: Statuses in which a host whose agent is not the expected one gets upgrade-agent instead of its steps.
UPGRADE_STATES = ("binding", "discovering", "discovering-unbound", "insufficient", "insufficient-unbound", "known",
                  "pending-for-input", "known-unbound")
#: Steps that send packets beyond the host (ARP sweeps, pings, DNS, HTTP, NTP name lookups). The demo and the
#: tests disable them where the host is this machine rather than a test host in its own network namespace.
OFF_HOST_STEPS = (
    "connectivity-check", "free-network-addresses", "domain-resolution", "tang-connectivity-check",
    "verify-vips", "api-vip-connectivity-check", "ntp-synchronizer", "dhcp-lease-allocate",
)
#: Cluster statuses in which a new host may register.
ACCEPTING_CLUSTER_STATES = ("insufficient", "ready", "pending-for-input", "adding-hosts")
#: Host fields a re-registration during discovery forgets: the host reports them afresh.
DISCOVERY_FIELDS = ("inventory", "images_status", "ntp_sources", "connectivity", "free_addresses",
                    "domain_name_resolutions", "disks_info")

StatusChange = tuple[str, str | None]


def needs_upgrade(host: dict[str, Any], expected_agent: str | None) -> bool:
    return bool(expected_agent) and host.get("status") in UPGRADE_STATES and \
        host.get("discovery_agent_version") != expected_agent


def on_reregistration(host: dict[str, Any], bound: bool) -> tuple[StatusChange | None, bool]:
    """What a known host registering again (into a ``bound`` infra-env or not) does: (status change or None,
    whether it forgets its discovery fields). Raises ServiceRefusal where the real service refuses it."""
    status = host.get("status", "")
    discovering = "discovering" if bound else "discovering-unbound"
    if status == "installed":
        raise ServiceRefusal(409, f"Host {host['id']} is already installed")
    if status == "installing-pending-user-action":
        raise ServiceRefusal(403, "Host is required to be booted from disk")
    if status in ("installing", "installing-in-progress"):
        return ("error", "The host unexpectedly restarted during the installation"), False
    if status in PRE_INSTALL or status in UNBOUND or status in ("binding", "unbinding", "unbinding-pending-user-action",
                                                                "resetting-pending-user-action"):
        return (discovering, None), True
    if status in ("preparing-for-installation", "preparing-successful"):
        return ("known", None), False
    return None, False


#: Host validations a cluster's ignored-validations cannot switch off (the real service's non-ignorable ones).
NON_IGNORABLE_HOST_VALIDATIONS = frozenset({"connected", "has-inventory", "machine-cidr-defined", "hostname-unique",
                                            "hostname-valid"})


def ignored_host_validations(cluster: dict[str, Any] | None, validations: Mapping[str, Validation]
                             ) -> frozenset[str]:
    """The host validations the cluster's ``ignored-validations`` (v2SetIgnoredValidations) switch off: the ids
    listed, or every one of ``validations`` (the caller's rulebook's) for ``["all"]``, less the non-ignorable
    ones. A lab of small virtual machines sets the hardware ones, as users of the real service do."""
    raw = ((cluster or {}).get("_ignored_validations") or {}).get("host-validation-ids") or "[]"
    try:
        ids = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return frozenset()
    if not isinstance(ids, list):
        return frozenset()
    if "all" in ids:
        return frozenset(validations) - NON_IGNORABLE_HOST_VALIDATIONS
    return frozenset(str(i) for i in ids) - NON_IGNORABLE_HOST_VALIDATIONS


def host_status(host: dict[str, Any], results: dict[str, list[dict[str, str]]], connected: bool,
                validations: Mapping[str, Validation], ignored: frozenset[str] = frozenset()) -> StatusChange | None:
    """The status a host's validation ``results`` put it in (None: it stays where it is); ``validations``: the
    rulebook's that gave them (which gate the hardware, which block). The ``ignored`` validations' failures
    count for nothing (they are still reported)."""
    flat = {r["id"]: r for rs in results.values() for r in rs}
    status = host.get("status", "")
    unbound = not host.get("cluster_id")
    # "valid inventory" is the hardware area's call (has-inventory); without that area, any inventory
    has_inventory = flat.get("has-inventory", {}).get("status", "success") == "success" and bool(
        host.get("inventory"))

    def failing(pred: Any) -> list[str]:
        return [r["message"] for vid, r in flat.items()
                if pred(validations[vid]) and r["status"] in ("failure", "pending", "error") and vid not in ignored]

    if status in PRE_INSTALL or status in UNBOUND:
        suffix = "-unbound" if unbound else ""
        hw = failing(lambda v: v.hardware_gate)
        if not connected:
            return "disconnected" + suffix, None
        if not has_inventory:
            return "discovering" + suffix, None
        if hw:
            return "insufficient" + suffix, "Host does not meet the minimum hardware requirements: " + " ; ".join(hw)
        if unbound:
            return "known-unbound", None
        if flat.get("machine-cidr-defined", {}).get("status") in ("failure", "pending"):
            return "pending-for-input", "Waiting for user input: " + flat["machine-cidr-defined"]["message"]
        blocking = failing(lambda v: v.blocking)
        if blocking:
            return "insufficient", "Host cannot be installed due to following failing validation(s): " + " ; ".join(
                blocking)
        return "known", None
    if status == "preparing-for-installation":
        disk = flat.get("sufficient-installation-disk-speed", {}).get("status", "success")
        images = flat.get("container-images-available", {}).get("status", "success")
        if images == "failure":
            return "preparing-failed", ("Host failed to prepare for installation: "
                                        + flat["container-images-available"]["message"])
        if disk == "failure":
            return "insufficient", flat["sufficient-installation-disk-speed"]["message"]
        if disk == "success" and images == "success":
            return "preparing-successful", None
    return None


@dataclass
class ClusterChange:
    status: str
    info: str
    #: Hosts the cluster's move takes along: (host document, its new status).
    host_moves: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    install_started: bool = False
    install_completed: bool = False
    #: The cluster's validations (``cluster_validations``), by category: its ``validations_info``.
    validations: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: (message, severity) of the cluster validations that changed (``events.validation_changes``).
    events: list[tuple[str, str]] = field(default_factory=list)


def cluster_status(cluster: dict[str, Any], hosts: list[dict[str, Any]],
                   model: ClusterModel | None = None) -> ClusterChange:
    """Where a cluster's hosts and its own validations put it (its current status and info when nothing moves
    it). As the real monitor, it first assigns the machine network where it can, and it records the cluster's
    ``validations_info`` (the events of the validations that changed are the change's). ``model``: the
    cluster's (``cluster_model``), which derives what the validations read of the hosts once per report."""
    status = cluster.get("status")
    statuses = [h["status"] for h in hosts]
    machine_network.assign_machine_networks(cluster, hosts, model)
    change = ClusterChange(str(status), str(cluster.get("status_info", "")),
                           validations=cluster_validations.cluster_validations(cluster, hosts, model))
    change.events = list(validation_changes(cluster.get("validations_info"), change.validations, None))
    cluster["validations_info"] = json.dumps(change.validations)
    if status in ("insufficient", "ready", "pending-for-input"):
        needed = required_hosts(cluster)
        blocked = cluster_validations.status_by_validations(change.validations)
        if blocked is not None:
            change.status, change.info = blocked
        elif len(hosts) >= needed and all(s == "known" for s in statuses):
            change.status, change.info = "ready", "Cluster ready to be installed"
        else:
            change.status, change.info = "insufficient", (f"Cluster is not ready for install: {statuses.count('known')}"
                                                          f" of {max(needed, len(hosts))} hosts are known")
    elif status == "preparing-for-installation":
        if any(s in ("preparing-failed", "insufficient") for s in statuses):
            change.status, change.info = "insufficient", "Cluster failed to prepare for installation"
            change.host_moves = [(h, "known") for h in hosts if h["status"] in (
                "preparing-for-installation", "preparing-successful", "preparing-failed")]
        elif hosts and all(s == "preparing-successful" for s in statuses):
            change.status, change.info = "installing", "Installation in progress"
            change.install_started = True
            change.host_moves = [(h, "installing") for h in hosts]
    elif status in ("installing", "finalizing"):
        if any(s == "error" for s in statuses):
            change.status, change.info = "error", "cluster has hosts in error"
        elif hosts and all(s in ("installed", "added-to-existing-cluster") for s in statuses):
            change.status, change.info = "installed", "Cluster is installed"
            change.install_completed = True
    return change


def required_hosts(cluster: dict[str, Any]) -> int:
    return 1 if is_sno(cluster) else int(cluster.get("control_plane_count") or 3)


def assign_roles(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> None:
    """Auto-assign roles as the service does at install time: masters first, one of them bootstrap."""
    masters_needed = required_hosts(cluster)
    masters = [h for h in hosts if h.get("role") == "master"]
    for h in hosts:
        if h.get("role") in (None, "", "auto-assign"):
            if len(masters) < masters_needed:
                h["role"] = "master"
                masters.append(h)
            else:
                h["role"] = "worker"
    if masters and not any(h.get("bootstrap") for h in hosts):
        masters[0]["bootstrap"] = True
