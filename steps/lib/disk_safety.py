"""Decides whether a block device may be overwritten, before a single byte is written to it.

Writing an OS image destroys whatever the disk held, so every reason to refuse is checked up front and each
refusal names the reason: not a block device, a partition rather than a whole disk, read-only, the
installation media, mounted (itself or one of its partitions, also as swap), held by device-mapper/LVM/RAID,
not the disk the service chose, or too small. Mount tables are read from both our own mount namespace and
PID 1's, because ``ip netns exec`` and containers give the agent a different one than the host's.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from common.errors import UnsafeTarget
from common.host import Host

#: Volume identifiers of CoreOS live media (ISO 9660), as coreos-installer and the Go inventory know them.
MEDIA_VOLUME_PREFIXES = ("rhcos", "fedora-coreos", "rhel-coreos", "scos", "coreos", "agent")
ISO9660_PVD_OFFSET = 0x8000


@dataclass(frozen=True)
class BlockDevice:
    """A whole disk as sysfs describes it; ``path`` is the resolved host path (e.g. /dev/loop3)."""

    path: str
    name: str
    size_bytes: int
    logical_block_size: int
    #: "major:minor" of the disk and of each partition.
    dev: str
    partitions: dict[str, str]

    def partition_path(self, number: int) -> str | None:
        for name in self.partitions:
            if name.rsplit("p", 1)[-1] == str(number) or name == f"{self.name}{number}":
                return f"/dev/{name}"
        return None


def describe(host: Host, path: str) -> BlockDevice:
    """The block device behind ``path`` (symlinks such as /dev/disk/by-id resolved); UnsafeTarget if none."""
    if not path.startswith("/dev/"):
        raise UnsafeTarget(f"refusing to write to {path}: the target must be a device under /dev")
    real = host.realpath(path)
    try:
        st = os.stat(host.path(real))
    except OSError as exc:
        raise UnsafeTarget(f"refusing to write to {path}: {exc.strerror}") from exc
    if not stat.S_ISBLK(st.st_mode):
        raise UnsafeTarget(f"refusing to write to {path}: {real} is not a block device")
    name = os.path.basename(real)
    sysdir = f"/sys/class/block/{name}"
    if host.exists(f"{sysdir}/partition"):
        parent = os.path.basename(os.path.dirname(host.realpath(sysdir)))
        raise UnsafeTarget(
            f"refusing to write to {path}: {real} is a partition, not a whole disk",
            hint=f"target the whole disk /dev/{parent}",
        )
    partitions = {
        entry: host.read_attr(f"{sysdir}/{entry}/dev") or ""
        for entry in host.listdir(sysdir)
        if entry.startswith(name) and host.exists(f"{sysdir}/{entry}/partition")
    }
    return BlockDevice(
        path=real,
        name=name,
        size_bytes=int(host.read_attr(f"{sysdir}/size") or 0) * 512,
        logical_block_size=int(host.read_attr(f"{sysdir}/queue/logical_block_size") or 512),
        dev=host.read_attr(f"{sysdir}/dev") or f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}",
        partitions=partitions,
    )


def check_target(
    host: Host,
    path: str,
    *,
    disk_id: str | None = None,
    expected_size: int | None = None,
    image_size: int | None = None,
) -> BlockDevice:
    """Every refusal rule in one place; returns the device when it is safe to overwrite."""
    dev = describe(host, path)
    where = f"refusing to write to {path}"
    if disk_id is not None and (not disk_id.startswith("/dev/") or host.realpath(disk_id) != dev.path):
        chosen = host.realpath(disk_id)
        raise UnsafeTarget(f"{where}: it is not the disk the service chose ({disk_id} is {chosen})")
    if expected_size is not None and expected_size != dev.size_bytes:
        raise UnsafeTarget(
            f"{where}: it has {dev.size_bytes} bytes but the service chose a disk of {expected_size} bytes",
            hint="the disks changed since the inventory was taken; let the host re-register",
        )
    if host.read_attr(f"/sys/class/block/{dev.name}/ro") == "1":
        raise UnsafeTarget(f"{where}: the device is read-only")
    if dev.size_bytes == 0:
        raise UnsafeTarget(f"{where}: the device has no media (size 0)")
    if image_size is not None and image_size > dev.size_bytes:
        raise UnsafeTarget(
            f"{where}: the image needs {image_size} bytes but the disk has only {dev.size_bytes}",
            hint="choose a larger installation disk",
        )
    names = {dev.dev: dev.name, **{majmin: part for part, majmin in dev.partitions.items()}}
    by_path = {f"/dev/{n}": n for n in names.values()}
    for majmin, source, target in _mounts(host):
        hit = names.get(majmin) or by_path.get(source)
        if hit is not None:
            which = "the device" if hit == dev.name else f"its partition /dev/{hit}"
            raise UnsafeTarget(f"{where}: {which} is mounted on {target}", hint="unmount it first")
    for swap in _swaps(host):
        real = host.realpath(swap)
        if real == dev.path or os.path.basename(real) in dev.partitions:
            raise UnsafeTarget(f"{where}: {real} is in use as swap", hint="swapoff it first")
    for name in [dev.name, *dev.partitions]:
        holders = host.listdir(f"/sys/class/block/{name}/holders")
        if holders:
            raise UnsafeTarget(
                f"{where}: /dev/{name} is held by {', '.join(holders)} (active LVM, RAID or device-mapper)",
                hint="deactivate the volume group / array first",
            )
    label = media_label(host, dev.path)
    if label is not None:
        raise UnsafeTarget(f"{where}: it is the installation media (ISO 9660 volume {label!r})")
    return dev


def media_label(host: Host, path: str) -> str | None:
    """The volume id if the device starts with a CoreOS live ISO 9660 image, else None."""
    try:
        with open(host.path(path), "rb") as fh:
            fh.seek(ISO9660_PVD_OFFSET)
            pvd = fh.read(2048)
    except OSError:
        return None
    if len(pvd) < 72 or pvd[1:6] != b"CD001":
        return None
    volume = pvd[40:72].decode("ascii", errors="replace").strip()
    return volume if volume.lower().startswith(MEDIA_VOLUME_PREFIXES) else None


def _mounts(host: Host) -> list[tuple[str, str, str]]:
    """(major:minor, source, mount point) of every mount in our namespace and in PID 1's."""
    seen: list[tuple[str, str, str]] = []
    for table in ("/proc/self/mountinfo", "/proc/1/mountinfo"):
        for line in (host.read_text(table) or "").splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or len(rest) < 2:
                continue
            seen.append((fields[2], rest[1], _unescape(fields[4])))
    return seen


def _swaps(host: Host) -> list[str]:
    lines = (host.read_text("/proc/swaps") or "").splitlines()[1:]
    return [line.split()[0] for line in lines if line.strip() and line.startswith("/dev/")]


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
