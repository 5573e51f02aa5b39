"""Hardware area of the reference service: stored inventories and the real service's hardware validations.

On an inventory reply the host's inventory is stored the way the real service's ``UpdateInventory`` stores
it: interfaces of virtual types dropped, each disk's eligibility completed with the service's own reasons
(minimum size for the host's role, the drive-type whitelist, multipath and iSCSI rules), and an installation
disk chosen (the first eligible disk in the service's order) unless the user picked a still-eligible one. The
validations use the real ids, categories, thresholds and message texts (``internal/host/validator.go``),
because people and tools read ``validations_info`` and ``status_info`` from both services alike.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from agent.inventory.hostname import FORBIDDEN
from reference_service.registry import (
    HostView,
    Outcome,
    disk_key,
    is_sno,
    parse_json_field,
    reply_handler,
    skipped_formatting,
    validation,
)


@dataclass(frozen=True)
class Requirements:
    cpu_cores: int
    ram_mib: int
    disk_size_gb: int


#: OpenShift's per-role host requirements (``default_hw_requirements.json``).
MASTER = Requirements(4, 16384, 100)
WORKER = Requirements(2, 8192, 100)
ARBITER = Requirements(2, 8192, 50)
SNO = Requirements(8, 16384, 100)
SNO_FROM_4_22 = Requirements(4, 16384, 100)
#: Memory a host may lack against a requirement before it fails (``HostMemoryRequirementToleranceMiB``).
MEMORY_TOLERANCE_MIB = 100
#: Extra tolerance when only /proc/meminfo was available: MemTotal is below the installed amount.
MEMINFO_TOLERANCE = 0.02
VIRTUAL_INTERFACE_TYPES_KEPT = ("", "physical", "vlan", "bond")
HOSTNAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}(?:[.][a-z0-9-]{1,63})*$"
#: The names the agent replaces and the service refuses are the same list.
FORBIDDEN_HOSTNAMES = FORBIDDEN

TOO_SMALL = "Disk is too small (disk only has {have}, but {need} are required)"
WRONG_DRIVE_TYPE = "Drive type is {type}, it must be one of {allowed}."
WRONG_MULTIPATH_TYPE = "Multipath device has path of type {type}, it must be FC"
ISCSI_MULTIPATH_HOLDER = "iSCSI disk with a multipath holder is not eligible"
ISCSI_SAME_NETWORK = "iSCSI host IP {ip} is the same as host IP, they must be different"
#: Reasons the service itself adds: removed before they are computed again, so they never pile up.
_SERVICE_REASONS = re.compile(
    r"^(Disk is too small \(|Drive type is .*, it must be one of |Multipath device has "
    r"path of type |iSCSI disk with a multipath holder|iSCSI host IP |Host IP address "
    r"is not available|Cannot (parse iSCSI host IP|find default route|find the network))"
)


# -- formatting as the Go service does ---------------------------------------------------------
def humanize_bytes(n: int) -> str:
    """go-humanize's ``Bytes``: SI units, one decimal below 10 ("1.0 GB", "120 GB", "0 B")."""
    if n < 10:
        return f"{n} B"
    exp = min(math.floor(math.log(n) / math.log(1000)), 6)
    unit = ("B", "kB", "MB", "GB", "TB", "PB", "EB")[exp]
    value = math.floor(n / 1000**exp * 10 + 0.5) / 10
    return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"


def bytes_to_string(n: int) -> str:
    """assisted-service's ``conversions.BytesToString`` (binary units)."""
    for unit, size in (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    if n >= 1 << 20:
        return f"{n >> 20} MiB"
    if n >= 1 << 10:
        return f"{n >> 10} KiB"
    return f"{n} bytes"


# -- requirements ----------------------------------------------------------------------------------
def _version(text: str | None) -> tuple[int, ...] | None:
    m = re.match(r"^(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def effective_role(host: dict[str, Any]) -> str:
    role = host.get("role") or "auto-assign"
    if role == "auto-assign" and host.get("suggested_role"):
        role = host["suggested_role"]
    return str(role)


def role_requirements(role: str, cluster: dict[str, Any] | None) -> Requirements:
    if role == "master":
        if is_sno(cluster):
            version = _version((cluster or {}).get("openshift_version"))
            return SNO_FROM_4_22 if version and version >= (4, 22) else SNO
        return MASTER
    if role == "arbiter":
        return ARBITER
    return WORKER


def minimum_requirements(cluster: dict[str, Any] | None) -> tuple[int, int]:
    """(CPU cores, RAM MiB) any role needs at least: what has-min-cpu-cores and has-min-memory check."""
    master = role_requirements("master", cluster)
    return min(master.cpu_cores, WORKER.cpu_cores), min(master.ram_mib, WORKER.ram_mib)


def valid_drive_types(architecture: str, openshift_version: str | None) -> list[str]:
    types = ["HDD", "SSD", "Multipath"]
    version = _version(openshift_version)
    if version and version >= (4, 14):
        types.append("RAID")
    if version and version >= (4, 15):
        types.append("iSCSI")
    if architecture in ("x86_64", "s390x"):
        types.append("FC")
    if architecture == "s390x":
        types += ["ECKD (ESE)", "ECKD", "FBA"]
    return types


# -- disks -----------------------------------------------------------------------------------------
def _iscsi_network_reason(disk: dict[str, Any], inventory: dict[str, Any]) -> str | None:
    ip_text = (disk.get("iscsi") or {}).get("host_ip_address")
    if not ip_text:
        return "Host IP address is not available"
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        return f"Cannot parse iSCSI host IP {ip_text}"
    family = 10 if ip.version == 6 else 2
    default = next(
        (
            r
            for r in inventory.get("routes") or []
            if r.get("family") == family and r.get("destination") in ("0.0.0.0", "::")
        ),
        None,
    )
    if default is None:
        return "Cannot find default route"
    nic = next((i for i in inventory.get("interfaces") or [] if i.get("name") == default.get("interface")), None)
    if nic is None:
        return "Cannot find the network interface behind the default route"
    cidrs = nic.get("ipv6_addresses" if ip.version == 6 else "ipv4_addresses") or []
    if any(_address_of(c) == ip for c in cidrs):
        return ISCSI_SAME_NETWORK.format(ip=ip)
    return None


def _address_of(cidr: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of an inventory CIDR; None for a malformed one (the spec only says "string")."""
    try:
        return ipaddress.ip_interface(cidr).ip
    except ValueError:
        return None


def service_disk_reasons(
    disk: dict[str, Any],
    inventory: dict[str, Any],
    *,
    role: str = "worker",
    cluster: dict[str, Any] | None = None,
) -> list[str]:
    """The reasons the service adds to a disk's agent-side ones, for a host of ``role`` in ``cluster``."""
    reasons = []
    need = role_requirements(role, cluster).disk_size_gb * 10**9
    size = int(disk.get("size_bytes") or 0)
    if size < need:
        reasons.append(TOO_SMALL.format(have=humanize_bytes(size), need=humanize_bytes(need)))
    arch = str((inventory.get("cpu") or {}).get("architecture") or "")
    allowed = valid_drive_types(arch, (cluster or {}).get("openshift_version"))
    dtype = disk.get("drive_type") or ""
    if dtype not in allowed:
        reasons.append(WRONG_DRIVE_TYPE.format(type=dtype, allowed=", ".join(allowed)))
    disks = inventory.get("disks") or []
    if dtype == "Multipath":
        for other in disks:
            if disk.get("name") in str(other.get("holders") or "").split(",") and other.get("drive_type") != "FC":
                reasons.append(WRONG_MULTIPATH_TYPE.format(type=other.get("drive_type")))
                break
    if dtype == "iSCSI":
        multipath = {d.get("name") for d in disks if d.get("drive_type") == "Multipath"}
        if multipath & set(str(disk.get("holders") or "").split(",")):
            reasons.append(ISCSI_MULTIPATH_HOLDER)
        network = _iscsi_network_reason(disk, inventory)
        if network:
            reasons.append(network)
    return reasons


def complete_eligibility(inventory: dict[str, Any], *, role: str, cluster: dict[str, Any] | None) -> None:
    """Add the service's reasons to every disk and decide ``eligible``, as the service does on each update."""
    for disk in inventory.get("disks") or []:
        elig = disk.get("installation_eligibility") or {}
        agent_reasons = [r for r in elig.get("not_eligible_reasons") or [] if not _SERVICE_REASONS.match(r)]
        reasons = agent_reasons + service_disk_reasons(disk, inventory, role=role, cluster=cluster)
        disk["installation_eligibility"] = {"eligible": not reasons, "not_eligible_reasons": reasons or None}
        if not disk.get("id"):
            disk["id"] = disk.get("by_id") or disk.get("by_path") or disk.get("path") or ""


def eligible_disks(inventory: dict[str, Any]) -> list[dict[str, Any]]:
    """Eligible disks in the order the service prefers for the installation disk.

    Bootable disks first (the one the machine boots from), then non-NVMe (keep the fast drives for workloads),
    drive type alphabetically (HDD before SSD), the smallest, then HCTL (physical order).
    """
    disks = [d for d in inventory.get("disks") or [] if (d.get("installation_eligibility") or {}).get("eligible")]
    return sorted(
        disks,
        key=lambda d: (
            not d.get("bootable"),
            str(d.get("name", "")).startswith("nvme"),
            str(d.get("drive_type", "")),
            int(d.get("size_bytes") or 0),
            str(d.get("hctl", "")),
        ),
    )


#: Host states in which the real service's ``UpdateInventory`` takes an inventory (plus every ``*-unbound``);
#: in any other (preparing, installing, installed, error...) it refuses it, so the installation disk and the
#: disks' eligibility cannot change under a host that is preparing or installing.
INVENTORY_UPDATE_STATES = (
    "discovering", "known", "disconnected", "insufficient", "pending-for-input", "installing-in-progress",
)


@reply_handler("inventory")
def store_inventory(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    if not isinstance(output, dict):
        return
    status = str(view.host.get("status") or "")
    if status and status not in INVENTORY_UPDATE_STATES and not status.endswith("-unbound"):
        return
    inventory = json.loads(json.dumps(output))
    keep_virtual = bool(getattr(getattr(view.service, "settings", None), "enable_virtual_interfaces", False))
    if not keep_virtual:
        inventory["interfaces"] = [
            i for i in inventory.get("interfaces") or [] if i.get("type", "") in VIRTUAL_INTERFACE_TYPES_KEPT
        ]
    complete_eligibility(inventory, role=effective_role(view.host), cluster=view.cluster)
    host = view.host
    ordered = eligible_disks(inventory)
    chosen = next((d for d in ordered if d.get("id") == host.get("installation_disk_id")), None)
    if chosen is None:
        chosen = ordered[0] if ordered else None
    host["installation_disk_id"] = chosen.get("id", "") if chosen else ""
    host["installation_disk_path"] = f"/dev/{chosen['name']}" if chosen and chosen.get("name") else ""
    host["disks_to_be_formatted"] = ",".join(disk_key(d) for d in disks_to_be_formatted(inventory))
    host["inventory"] = json.dumps(inventory, separators=(",", ":"))


#: Drive types whose disks are never formatted: shared (FC, iSCSI, multipath) or logical (LVM) storage.
NEVER_FORMATTED = ("FC", "iSCSI", "LVM", "Multipath")


def disks_to_be_formatted(inventory: dict[str, Any]) -> list[dict[str, Any]]:
    """Disks the installation formats besides the one it installs to, as the real service picks them: bootable
    local disks, so that an old operating system on them cannot boot instead of the new one."""
    return [
        d for d in inventory.get("disks") or []
        if d.get("bootable") and not d.get("removable") and "mmcblk" not in str(d.get("by_path") or "")
        and d.get("drive_type") not in NEVER_FORMATTED and not d.get("is_installation_media")
    ]


@validation("no-skip-installation-disk", "hardware")
def no_skip_installation_disk(view: HostView) -> Outcome:
    disk = view.host.get("installation_disk_id")
    if disk and disk in skipped_formatting(view.host):
        return "failure", ("Requesting to skip the formatting of the installation disk is not allowed. The "
                           "installation disk must be formatted. Please either change this host's installation disk "
                           "or do not skip the formatting of the installation disk")
    return "success", "No request to skip formatting of the installation disk"


@validation("no-skip-missing-disk", "hardware")
def no_skip_missing_disk(view: HostView) -> Outcome:
    """A disk kept from formatting that is gone may be back under a new id: the request must be made again
    knowingly, or that disk would be formatted after all."""
    inv = view.inventory
    if inv is None:
        return "pending", "Host inventory not available yet"
    present = {disk_key(d) for d in inv.get("disks") or []}
    if any(d not in present for d in skipped_formatting(view.host)):
        return "failure", ("One or more of the disks that you have requested to skip the formatting of are no "
                           "longer present on this host. To ensure they haven't just changed their identity, please "
                           "remove your request to skip their formatting and then if needed add them back using the "
                           "new ID")
    return "success", "All disks that have skipped formatting are present in the host inventory"


# -- validations -----------------------------------------------------------------------------------
def valid_inventory(view: HostView) -> dict[str, Any] | None:
    """The inventory if the service would accept it as valid: it has CPU, memory and at least one disk."""
    inv = view.inventory
    if not isinstance(inv, dict) or not inv.get("cpu") or not inv.get("memory") or not inv.get("disks"):
        return None
    return inv


def real_hostname(host: dict[str, Any], inventory: dict[str, Any]) -> str:
    """The name the host will get: the user's requested hostname if set, else the one it reported."""
    return str(host.get("requested_hostname") or inventory.get("hostname") or "")


def _memory_ok(inv: dict[str, Any], required_mib: int) -> bool:
    mem = inv.get("memory") or {}
    tolerance = MEMORY_TOLERANCE_MIB << 20
    if mem.get("physical_bytes_method") == "meminfo":
        tolerance += int((required_mib << 20) * MEMINFO_TOLERANCE)
    return int(mem.get("physical_bytes") or 0) >= (required_mib << 20) - tolerance


@validation("has-inventory", "hardware", hardware_gate=True, unbound=True)
def has_inventory(view: HostView) -> Outcome:
    if valid_inventory(view) is not None:
        return "success", "Valid inventory exists for the host"
    if isinstance(view.inventory, dict) and (view.inventory.get("truncation") or {}).get("type") == "full":
        return "failure", "Inventory has been received for the host but it is fully truncated"
    return "failure", "Inventory has not been received for the host"


def _truncation(view: HostView, kind: str) -> Outcome:
    inv = view.inventory
    if not isinstance(inv, dict):
        return "pending", "Missing inventory"
    truncation = inv.get("truncation") or {}
    if truncation.get("type") == kind:
        return "failure", f"Inventory is truncated ({kind}): {', '.join(truncation.get('reasons') or [])}"
    return "success", f"Inventory is not {'fully' if kind == 'full' else 'partially'} truncated"


@validation("inventory-not-fully-truncated", "hardware", hardware_gate=True, unbound=True)
def inventory_not_fully_truncated(view: HostView) -> Outcome:
    """Blocking: what is left of a fully truncated inventory cannot be validated (nor installed to)."""
    return _truncation(view, "full")


@validation("inventory-not-partially-truncated", "hardware", blocking=False, unbound=True)
def inventory_not_partially_truncated(view: HostView) -> Outcome:
    """A warning: a partial inventory lost only what the validations do not need."""
    return _truncation(view, "partial")


@validation("has-min-cpu-cores", "hardware", hardware_gate=True, unbound=True)
def has_min_cpu_cores(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    need, _ = minimum_requirements(view.cluster)
    count = int((inv.get("cpu") or {}).get("count") or 0)
    if count >= need:
        return "success", "Sufficient CPU cores"
    return "failure", (
        "The host is not eligible to participate in Openshift Cluster because the minimum required "
        f"CPU cores for any role is {need}, found only {count}"
    )


@validation("has-min-memory", "hardware", hardware_gate=True, unbound=True)
def has_min_memory(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    _, need_mib = minimum_requirements(view.cluster)
    if _memory_ok(inv, need_mib):
        return "success", "Sufficient minimum RAM"
    have = int((inv.get("memory") or {}).get("physical_bytes") or 0)
    return "failure", (
        "The host is not eligible to participate in Openshift Cluster because the minimum required "
        f"RAM for any role is {bytes_to_string(need_mib << 20)}, found only {bytes_to_string(have)}"
    )


@validation("has-min-valid-disks", "hardware", hardware_gate=True, unbound=True)
def has_min_valid_disks(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    current = json.loads(json.dumps(inv))
    complete_eligibility(current, role=effective_role(view.host), cluster=view.cluster)
    if eligible_disks(current):
        return "success", "Sufficient disk capacity"
    return (
        "failure",
        "No eligible disks were found, please check specific disks to see why they are not eligible",
    )


@validation("has-cpu-cores-for-role", "hardware")
def has_cpu_cores_for_role(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory or role"
    role = effective_role(view.host)
    need = role_requirements(role, view.cluster).cpu_cores
    count = int((inv.get("cpu") or {}).get("count") or 0)
    if count >= need:
        return "success", f"Sufficient CPU cores for role {role}"
    return "failure", f"Require at least {need} CPU cores for {role} role, found only {count}"


@validation("has-memory-for-role", "hardware")
def has_memory_for_role(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory or role"
    role = effective_role(view.host)
    need_mib = role_requirements(role, view.cluster).ram_mib
    if _memory_ok(inv, need_mib):
        return "success", f"Sufficient RAM for role {role}"
    have = int((inv.get("memory") or {}).get("physical_bytes") or 0)
    return "failure", (
        f"Require at least {bytes_to_string(need_mib << 20)} RAM for role {role}, found only {bytes_to_string(have)}"
    )


@validation("hostname-unique", "hardware")
def hostname_unique(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "pending", "Missing inventory"
    name = real_hostname(view.host, inv)
    for other in view.others:
        other_inv = parse_json_field(other, "inventory")
        if isinstance(other_inv, dict) and real_hostname(other, other_inv) == name:
            return "failure", f"Hostname {name} is not unique in cluster"
    return "success", f"Hostname {name} is unique in cluster"


def hostname_problem(name: str) -> str | None:
    """Why a hostname is refused, in the service's words; None when it is allowed."""
    if name in FORBIDDEN_HOSTNAMES:
        return f"The host name {name} is forbidden"
    if len(name) > 253 or not re.match(HOSTNAME_PATTERN, name):
        return f"Hostname {name} is forbidden, hostname should match pattern {HOSTNAME_PATTERN}"
    return None


@validation("hostname-valid", "hardware", unbound=True)
def hostname_valid(view: HostView) -> Outcome:
    inv = valid_inventory(view)
    if inv is None:
        return "failure", "Missing inventory"
    name = real_hostname(view.host, inv)
    problem = hostname_problem(name)
    if problem:
        return "failure", problem
    return "success", f"Hostname {name} is allowed"
