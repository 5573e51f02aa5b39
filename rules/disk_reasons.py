"""The reasons the real service adds to a disk's own (the agent's) when it judges it for installation.

A module of its own, over ``requirements`` alone, because ``agent inventory --format table`` shows them: the
table's start-up then pays for no dataclass, host view or cluster model (issue 29: within 1.2x the CPU of the
Go agent's whole inventory). ``disks`` applies them when the service stores an inventory.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from rules.requirements import humanize_bytes, role_requirements, valid_drive_types

TOO_SMALL = "Disk is too small (disk only has {have}, but {need} are required)"
WRONG_DRIVE_TYPE = "Drive type is {type}, it must be one of {allowed}."
WRONG_MULTIPATH_TYPE = "Multipath device has path of type {type}, it must be FC"
ISCSI_MULTIPATH_HOLDER = "iSCSI disk with a multipath holder is not eligible"
ISCSI_SAME_NETWORK = "iSCSI host IP {ip} is the same as host IP, they must be different"


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
