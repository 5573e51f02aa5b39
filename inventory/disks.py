"""Disks: every block device a person could install to, with the facts and the agent-side eligibility verdict.

Facts come from sysfs (``/sys/block``), the udev database when udev runs (``/run/udev/data``) and the
``/dev/disk/by-id|by-path`` links; optional tools (``sg_inq``, ``smartctl``) only add to them. The rules are
the Go agent's (HEAD): which devices are skipped, the drive-type precedence, the disk ``id`` (by-id, else
by-path, else path) and the reason strings, word for word, because the service and its users key on them.
The service adds its own reasons afterwards (size per role, drive-type whitelist); this module checks no size.
Where udev has no serial (no udev running, or a virtio disk) the kernel's ``serial`` attribute is reported;
the Go agent would leave it empty.
"""

# No "from __future__ import annotations": the NamedTuples here are made from evaluated annotations (common.host).
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from common.host import Host
from inventory.options import Options

REASON_UNKNOWN_CONTROLLER = "Disk has unknown storage controller"
REASON_LVM = "Disk is an LVM logical volume"
REASON_ISO = "Disk appears to be an ISO installation media (has partition with mountpoint suffix iso)"
REASON_MOUNTED = "Disk has partition '{name}' mounted on '{mountpoint}'"
REASON_ISCSI_STATE_UNREADABLE = "Failed to read state of iSCSI disk"
REASON_ISCSI_NOT_RUNNING = "iSCSI disk is not in running state"
REASON_ISCSI_NO_SESSION = "Cannot find iSCSI session"
REASON_ISCSI_NO_TARGET = "Cannot find iSCSI target name"
REASON_IBFT_MISSING = "iBFT firmware is missing"
REASON_ISCSI_NOT_IN_IBFT = "iSCSI disk is missing from iBFT"

#: Name prefixes whose storage controller ghw recognises (``diskTypes``); anything else is "unknown".
KNOWN_CONTROLLERS = ("hd", "sd", "sr", "vd", "xvd", "nvme", "mmc")
#: Name prefixes ghw calls HDD (unless non-rotational); a rotational disk of another name is "Unknown".
_HDD_BY_NAME = ("sd", "hd", "vd", "xvd")
#: Size of the single fake disk reported on an appliance (agent-based installer) host.
APPLIANCE_DISK_BYTES = 100 << 30


# Plain classes, not dataclasses: the dataclasses import (and inspect behind it) is a cost at every start of
# ``agent inventory`` (bench/inventory_speed.py).


class Partition(NamedTuple):
    name: str
    mountpoint: str = ""
    label: str = ""


class IscsiFacts:
    """An iSCSI disk is installable only if the firmware can boot from it: its session runs and its target
    is one the firmware's boot table (iBFT) names."""

    def __init__(
        self,
        state: str | None = None,
        session: str = "",
        target: str = "",
        ibft_targets: list[str] | None = None,
    ) -> None:
        self.state = state  # the SCSI device's state; None: unreadable
        self.session = session  # sessionN in the device's sysfs path
        self.target = target  # the session's target IQN
        self.ibft_targets = ibft_targets  # target names in /sys/firmware/ibft; None: no iBFT at all


class DiskFacts(NamedTuple):
    """What the eligibility rules look at; filled from the host, or by hand in tests."""

    name: str
    drive_type: str
    partitions: Sequence[Partition] = ()
    iscsi: IscsiFacts | None = None


def drive_type(
    name: str,
    *,
    rotational: bool,
    bus_path: str = "",
    dm_uuid: str = "",
    dasd_discipline: str = "",
    dasd_ese: bool = False,
) -> str:
    """The Go agent's precedence: DASD, iSCSI, FC, Multipath/LVM/RAID, then ghw's FDD/ODD/HDD/SSD."""
    if name.startswith("dasd"):
        if dasd_discipline.startswith("ECKD"):
            return "ECKD (ESE)" if dasd_ese else "ECKD"
        if dasd_discipline.startswith("FBA"):
            return "FBA"
    if "-iscsi-" in bus_path:
        return "iSCSI"
    if "-fc-" in bus_path or bus_path.startswith("fc-"):
        return "FC"
    if name.startswith("dm-"):
        if dm_uuid.startswith("mpath-"):
            return "Multipath"
        if dm_uuid.startswith("LVM-"):
            return "LVM"
    if name.startswith("md"):
        return "RAID"
    if name.startswith("fd"):
        return "FDD"
    if name.startswith("sr"):
        return "ODD"
    if name.startswith(("dm-", "dasd")):
        return "Unknown"
    if not rotational or name.startswith(("nvme", "mmc")):
        return "SSD"
    return "HDD" if name.startswith(_HDD_BY_NAME) else "Unknown"


def disk_id(by_id: str, by_path: str, path: str) -> str:
    """The disk's stable identifier: by-id (a WWN), else by-path, else the kernel path."""
    return by_id or by_path or path


def eligibility(facts: DiskFacts) -> tuple[list[str], bool]:
    """(reasons the disk cannot be installed to, whether it looks like installation media)."""
    reasons: list[str] = []
    media = facts.drive_type == "ODD"
    exempt = facts.drive_type in ("Multipath", "LVM", "RAID", "ECKD", "ECKD (ESE)", "FBA")
    if not exempt and not facts.name.startswith(KNOWN_CONTROLLERS):
        reasons.append(REASON_UNKNOWN_CONTROLLER)
    if facts.drive_type == "LVM":
        reasons.append(REASON_LVM)
    if facts.drive_type == "iSCSI":
        reason = _iscsi_reason(facts.iscsi or IscsiFacts())
        if reason:
            reasons.append(reason)
    if not any(p.label.startswith("agent") for p in facts.partitions):
        for part in facts.partitions:
            if part.mountpoint.endswith("iso"):
                if REASON_ISO not in reasons:  # once per disk, an optical drive included (as Go)
                    reasons.append(REASON_ISO)
                media = True
            elif part.mountpoint:
                reasons.append(REASON_MOUNTED.format(name=part.name, mountpoint=part.mountpoint))
    return reasons, media


def _iscsi_reason(facts: IscsiFacts) -> str:
    """The first check that fails, each depending on the one before (as the Go agent checks them)."""
    if facts.state is None:
        return REASON_ISCSI_STATE_UNREADABLE
    if facts.state != "running":
        return REASON_ISCSI_NOT_RUNNING
    if not facts.session:
        return REASON_ISCSI_NO_SESSION
    if not facts.target:
        return REASON_ISCSI_NO_TARGET
    if facts.ibft_targets is None:
        return REASON_IBFT_MISSING
    if facts.target not in facts.ibft_targets:
        return REASON_ISCSI_NOT_IN_IBFT
    return ""


def iscsi_facts(host: Host, sys_dir: str) -> IscsiFacts:
    facts = IscsiFacts(state=host.read_attr(f"{sys_dir}/device/state"))
    facts.session = next((part for part in host.realpath(f"{sys_dir}/device").split("/")
                          if part.startswith("session") and part[7:].isdigit()), "")
    if facts.session:
        facts.target = host.read_attr(f"/sys/class/iscsi_session/{facts.session}/targetname") or ""
    if host.is_dir("/sys/firmware/ibft"):
        names = (host.read_attr(f"/sys/firmware/ibft/{entry}/target-name")
                 for entry in host.listdir("/sys/firmware/ibft") if entry.startswith("target"))
        facts.ibft_targets = [name for name in names if name]
    return facts


def udev_properties(host: Host, sys_dir: str) -> dict[str, str]:
    """E: properties of the device in the udev database; empty when udev does not run (as on this VM)."""
    dev = host.read_attr(f"{sys_dir}/dev")
    if not dev:
        return {}
    props = {}
    for line in (host.read_text(f"/run/udev/data/b{dev}") or "").splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


def _links(host: Host, folder: str) -> dict[str, list[str]]:
    """Device name -> the symlinks in a /dev/disk folder that point to it."""
    out: dict[str, list[str]] = {}
    for entry in host.listdir(folder):
        target = host.readlink(f"{folder}/{entry}")
        if target is not None:
            out.setdefault(os.path.basename(target), []).append(f"{folder}/{entry}")
    return out


def mountpoints(host: Host) -> dict[str, str]:
    """Kernel device name -> first mountpoint, from the host's mount table."""
    text = host.read_text("/etc/mtab") or host.read_text("/proc/1/mounts") or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith("/dev/"):
            continue
        name = os.path.basename(host.realpath(parts[0]))
        out.setdefault(name, parts[1].replace("\\040", " "))
    return out


def _bootable(host: Host, path: str) -> bool:
    """An MBR boot signature (also on GPT's protective MBR): what ``file -s`` calls "DOS/MBR boot sector"."""
    try:
        fd = os.open(host.fs_path(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        sector = os.pread(fd, 512, 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    return len(sector) == 512 and sector[510:512] == b"\x55\xaa"


def _skip(host: Host, name: str, sys_dir: str) -> bool:
    if name.startswith(("loop", "zram", "ram")) or host.read_attr(f"{sys_dir}/hidden") == "1":
        return True
    if name.startswith("dm-"):
        uuid = host.read_attr(f"{sys_dir}/dm/uuid") or ""
        return not uuid.startswith(("mpath-", "LVM-"))
    return False


def _clean(value: str | None) -> str:
    value = (value or "").strip()
    return "" if value.lower() == "unknown" else value


def _iscsi_host_ip(host: Host, sys_dir: str) -> str:
    for part in host.realpath(sys_dir).split("/"):
        if part.startswith("host") and part[4:].isdigit():
            return host.read_attr(f"/sys/class/iscsi_host/{part}/ipaddress") or ""
    return ""


def _disk(
    host: Host,
    name: str,
    links: dict[str, dict[str, list[str]]],
    shared_paths: set[str],
    mounts: dict[str, str],
    tools: dict[str, bool],
) -> dict[str, Any]:
    sys_dir = f"/sys/block/{name}"
    props = udev_properties(host, sys_dir)
    by_path_links = links["by-path"].get(name, [])
    bus_path = props.get("ID_PATH") or (os.path.basename(by_path_links[0]) if by_path_links else "")
    dtype = drive_type(
        name,
        rotational=host.read_attr(f"{sys_dir}/queue/rotational") == "1",
        bus_path=bus_path,
        dm_uuid=host.read_attr(f"{sys_dir}/dm/uuid") or "",
        dasd_discipline=host.read_attr(f"{sys_dir}/device/discipline") or "",
        dasd_ese=host.read_attr(f"{sys_dir}/device/ese") == "1",
    )
    by_path = f"/dev/disk/by-path/{bus_path}" if bus_path and bus_path not in shared_paths else ""
    if by_path and not host.exists(by_path):
        by_path = ""
    path = f"/dev/{name}"
    if not host.exists(path) and by_path:
        path = host.realpath(by_path)
    # The Go agent maps every wwn-*/nvme-eui* link (in directory order) to its target, so when a disk has
    # several (an NVMe disk with both nvme-eui.X and wwn-eui.X) the last one by name wins.
    by_id = max(
        (link for link in links["by-id"].get(name, []) if os.path.basename(link).startswith(("wwn-", "nvme-eui"))),
        default="",
    )
    wwn = props.get("ID_WWN_WITH_EXTENSION") or props.get("ID_WWN") or ""
    if not wwn and by_id.startswith("/dev/disk/by-id/wwn-"):
        wwn = by_id[len("/dev/disk/by-id/wwn-") :]
    partitions = []
    for entry in host.listdir(sys_dir):
        if entry.startswith(name) and host.exists(f"{sys_dir}/{entry}/partition"):
            pprops = udev_properties(host, f"{sys_dir}/{entry}")
            label = pprops.get("ID_PART_ENTRY_NAME") or pprops.get("ID_FS_LABEL") or ""
            partitions.append(Partition(entry, mounts.get(entry, ""), label))
    facts = DiskFacts(name, dtype, partitions, iscsi_facts(host, sys_dir) if dtype == "iSCSI" else None)
    reasons, media = eligibility(facts)
    size = host.read_attr(f"{sys_dir}/size")
    disk: dict[str, Any] = {
        "name": name,
        "path": path,
        "by_id": by_id,
        "by_path": by_path,
        "id": disk_id(by_id, by_path, path),
        "drive_type": dtype,
        "hctl": next(iter(host.listdir(f"{sys_dir}/device/scsi_device")), ""),
        "model": _clean(props.get("ID_MODEL") or host.read_attr(f"{sys_dir}/device/model")),
        "vendor": _clean(props.get("ID_VENDOR") or host.read_attr(f"{sys_dir}/device/vendor")),
        "serial": _clean(
            props.get("ID_SCSI_SERIAL")
            or props.get("ID_SERIAL_SHORT")
            or props.get("ID_SERIAL")
            or host.read_attr(f"{sys_dir}/serial")
            or host.read_attr(f"{sys_dir}/device/serial")
        ),
        "wwn": wwn,
        "size_bytes": int(size) * 512 if size and size.isdigit() else 0,
        "bootable": _bootable(host, path),
        "removable": host.read_attr(f"{sys_dir}/removable") == "1",
        "is_installation_media": media,
        "holders": ",".join(host.listdir(f"{sys_dir}/holders")),
        "installation_eligibility": {"eligible": not reasons, "not_eligible_reasons": reasons or None},
        "smart": "",
    }
    if dtype == "iSCSI":
        disk["iscsi"] = {"host_ip_address": _iscsi_host_ip(host, sys_dir)}
    if tools["sg_inq"]:
        disk["has_uuid"] = host.run(["sg_inq", "-p", "0x83", path], timeout=5).ok
    if tools["smartctl"]:
        smart = host.run(["smartctl", "--xall", "--json=c", path], timeout=10)
        disk["smart"] = smart.stdout.strip()
    return disk


def _appliance_disk(host: Host, disks: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """On an appliance (agent-based installer image) host the real disks are replaced by one fake disk."""
    for name in host.listdir("/sys/block"):
        if name.startswith("dm-") and (host.read_attr(f"/sys/block/{name}/dm/name") or "").startswith("agent"):
            return [
                {
                    "name": name,
                    "path": f"/dev/{name}",
                    "id": f"/dev/{name}",
                    "drive_type": "SSD",
                    "size_bytes": APPLIANCE_DISK_BYTES,
                    "has_uuid": any(d.get("has_uuid") for d in disks),
                    "installation_eligibility": {"eligible": True, "not_eligible_reasons": None},
                }
            ]
    return None


def collect(host: Host, options: Options) -> dict[str, Any]:
    links = {folder: _links(host, f"/dev/disk/{folder}") for folder in ("by-id", "by-path")}
    path_owners: dict[str, int] = {}
    names = [n for n in host.listdir("/sys/block") if not _skip(host, n, f"/sys/block/{n}")]
    for name in names:
        bus = udev_properties(host, f"/sys/block/{name}").get("ID_PATH")
        if bus:
            path_owners[bus] = path_owners.get(bus, 0) + 1
    shared = {bus for bus, count in path_owners.items() if count > 1}
    mounts = mountpoints(host)
    tools = {"sg_inq": bool(host.which("sg_inq")), "smartctl": bool(host.which("smartctl"))}
    disks = [_disk(host, name, links, shared, mounts, tools) for name in names]
    disks = [d for d in disks if d["size_bytes"] >= options.disk_min_size]
    return {"disks": _appliance_disk(host, disks) or disks}
