"""Disks as the real service judges them: eligibility for installation, the installation disk, formatting.

On an inventory reply the host's inventory is stored the way the real service's ``UpdateInventory`` stores
it: interfaces of virtual types dropped, each disk's eligibility completed with the service's own reasons
(minimum size for the host's role, the drive-type whitelist, multipath and iSCSI rules), and an installation
disk chosen (the first eligible disk in the service's order) unless the user picked a still-eligible one.
The agent's inventory table shows the same reasons (``disk_reasons``).
"""

from __future__ import annotations

import re
from typing import Any

from common import json_codec
from rules.disk_reasons import service_disk_reasons
from rules.documents import HostView, disk_key, effective_role
from rules.registry import reply_handler

VIRTUAL_INTERFACE_TYPES_KEPT = ("", "physical", "vlan", "bond")
#: Reasons the service itself adds: removed before they are computed again, so they never pile up.
SERVICE_REASONS = re.compile(
    r"^(Disk is too small \(|Drive type is .*, it must be one of |Multipath device has "
    r"path of type |iSCSI disk with a multipath holder|iSCSI host IP |Host IP address "
    r"is not available|Cannot (parse iSCSI host IP|find default route|find the network))"
)


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
        agent_reasons = [r for r in elig.get("not_eligible_reasons") or [] if not SERVICE_REASONS.match(r)]
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
