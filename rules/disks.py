"""Disks as the real service judges them: eligibility for installation, the installation disk, formatting.

On an inventory reply the host's inventory is stored the way the real service's ``UpdateInventory`` stores
it: interfaces of virtual types dropped, each disk's eligibility completed with the service's own reasons
(minimum size for the host's role, the drive-type whitelist, multipath and iSCSI rules), and an installation
disk chosen (the first eligible disk in the service's order) unless the user picked a still-eligible one.
The agent's inventory table shows the same reasons (``service_disk_reasons``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from common import json_codec
from rules.documents import HostView, disk_key, effective_role
from rules.registry import reply_handler
from rules.requirements import humanize_bytes, role_requirements, valid_drive_types

VIRTUAL_INTERFACE_TYPES_KEPT = ("", "physical", "vlan", "bond")
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


def eligibility_copy(inventory: dict[str, Any]) -> dict[str, Any]:
    """A copy that ``complete_eligibility`` and ``store_inventory`` may change, leaving the original as it
    was: they only assign the inventory's and its disks' keys, so those two levels are what is copied."""
    copy = dict(inventory)
    if isinstance(copy.get("disks"), list):
        copy["disks"] = [dict(d) if isinstance(d, dict) else d for d in copy["disks"]]
    return copy


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
    inventory = eligibility_copy(output)
    keep_virtual = bool(getattr(view.settings, "enable_virtual_interfaces", False))
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
    host["inventory"] = json_codec.dumps(inventory)


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
