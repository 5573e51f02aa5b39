"""The hardware requirements of OpenShift hosts, and the Go service's ways of printing sizes.

The per-role minimums (``default_hw_requirements.json``) and the drive types a version and architecture allow
are what both the service's validations and the agent's inventory table judge a host by.
"""

# No "from __future__ import annotations": the NamedTuples here are made from evaluated annotations (common.host).
import math
import re
from typing import Any, NamedTuple


class Requirements(NamedTuple):  # not a dataclass: the inventory table's start-up would import dataclasses
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
def is_sno(cluster: dict[str, Any] | None) -> bool:
    """A single-node cluster, by either spelling the API has had for it (``documents`` offers it too)."""
    if not cluster:
        return False
    return cluster.get("control_plane_count") == 1 or cluster.get("high_availability_mode") == "None"


def _version(text: str | None) -> tuple[int, ...] | None:
    m = re.match(r"^(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


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
