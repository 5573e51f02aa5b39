"""What happens to a freshly written CoreOS image before first boot: proof it landed, then Ignition and kargs.

The proof is read from the disk itself, not from what we think we wrote: the primary GPT header and its
partition array must carry valid CRCs, the backup header must sit where the primary says, and the partition
named ``boot`` must mount. Ignition goes where CoreOS first boot looks for it, ``ignition/config.ign`` on the
``boot`` filesystem, and extra kernel arguments go into the ``options`` line of every BLS entry under
``loader/entries`` -- both exactly as ``coreos-installer install --ignition-file ... --append-karg ...`` does.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.errors import StepError
from common.host import Host

GPT_SIGNATURE = b"EFI PART"
BOOT_PARTITION_NAME = "boot"
IGNITION_PATH = "ignition/config.ign"
BLS_DIR = "loader/entries"


class ImageVerificationError(StepError):
    code = "image-verification-failed"


@dataclass(frozen=True)
class GptPartition:
    number: int
    name: str
    type_guid: str
    first_lba: int
    last_lba: int


@dataclass(frozen=True)
class GptTable:
    sector_size: int
    disk_guid: str
    alternate_lba: int
    partitions: list[GptPartition]

    def find(self, name: str) -> GptPartition | None:
        return next((p for p in self.partitions if p.name == name), None)


def parse_gpt(read_at: Callable[[int, int], bytes], sector_size: int) -> GptTable:
    """Parse and check the primary GPT (header CRC, entry-array CRC) and the backup header it points to."""
    header = read_at(sector_size, sector_size)
    if header[:8] != GPT_SIGNATURE:
        raise ImageVerificationError("no GPT found on the written disk (primary header signature missing)")
    size = struct.unpack_from("<I", header, 12)[0]
    if not 92 <= size <= sector_size:
        raise ImageVerificationError(f"primary GPT header has an invalid size {size}")
    crc = struct.unpack_from("<I", header, 16)[0]
    if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:size]) != crc:
        raise ImageVerificationError("primary GPT header CRC mismatch on the written disk")
    alternate, = struct.unpack_from("<Q", header, 32)
    disk_guid = str(uuid.UUID(bytes_le=bytes(header[56:72])))
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if entry_size < 128 or count > 1024:
        raise ImageVerificationError(f"implausible GPT entry array ({count} entries of {entry_size} bytes)")
    array = read_at(entries_lba * sector_size, count * entry_size)
    if zlib.crc32(array) != entries_crc:
        raise ImageVerificationError("GPT partition entry array CRC mismatch on the written disk")
    backup = read_at(alternate * sector_size, sector_size)
    if backup[:8] != GPT_SIGNATURE or struct.unpack_from("<Q", backup, 24)[0] != alternate:
        raise ImageVerificationError(f"backup GPT header missing at LBA {alternate} of the written disk")
    parts = []
    for i in range(count):
        entry = array[i * entry_size : (i + 1) * entry_size]
        if entry[:16] == b"\0" * 16:
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = bytes(entry[56:128]).decode("utf-16-le", errors="replace").split("\0", 1)[0]
        parts.append(GptPartition(i + 1, name, str(uuid.UUID(bytes_le=bytes(entry[:16]))), first, last))
    return GptTable(sector_size, disk_guid, alternate, parts)


class _Reader:
    """Reads byte ranges of a device, bypassing the page cache so what we check is what is on the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb", buffering=0) as fh:
            with contextlib.suppress(OSError):  # not every device supports it; the read still happens
                os.posix_fadvise(fh.fileno(), offset, length, os.POSIX_FADV_DONTNEED)
            fh.seek(offset)
            data = fh.read(length)
        if len(data) != length:
            raise ImageVerificationError(f"reading back {length} bytes at {offset} of {self.path} came short")
        return data


def read_gpt(host: Host, device: str, logical_block_size: int) -> GptTable:
    """The GPT of the written image, read with the disk's sector size (the writer refused any other)."""
    return parse_gpt(_Reader(host.path(device)), logical_block_size)


def reread_partitions(host: Host, device: str, number: int, timeout: float = 10.0) -> str:
    """Make the kernel see the new partition table and return the node of partition ``number``.

    ``partx -u`` updates (and drops) the partitions the kernel knows, ``partx -a`` adds the new ones; the
    latter complains about those that already exist, which is expected, so neither exit code decides: the
    partition node appearing does.
    """
    name = os.path.basename(device)
    host.run(["partx", "-u", device], timeout=30)
    host.run(["partx", "-a", device], timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in host.listdir(f"/sys/class/block/{name}"):
            sysfs = f"/sys/class/block/{name}/{entry}/partition"
            node = f"/dev/{entry}"
            if entry.startswith(name) and host.read_attr(sysfs) == str(number) and host.exists(node):
                return node
        time.sleep(0.05)
    raise ImageVerificationError(f"the kernel does not show partition {number} of {device} after writing")


@contextlib.contextmanager
def mounted(host: Host, partition: str, *, read_only: bool) -> Iterator[Path]:
    """Mount a partition on a private temporary directory for the duration of the block."""
    where = Path(tempfile.mkdtemp(prefix="assisted-boot-"))
    opts = "ro,nosuid,nodev,noexec" if read_only else "rw,nosuid,nodev,noexec"
    res = host.run(["mount", "-o", opts, str(host.path(partition)), str(where)], timeout=60)
    if not res.ok:
        where.rmdir()
        raise ImageVerificationError(f"cannot mount the boot partition {partition}: {res.stderr.strip()}")
    try:
        yield where
    finally:
        res = host.run(["umount", str(where)], timeout=60)
        if res.ok:
            where.rmdir()


def place_ignition(root: Path, ignition: bytes) -> None:
    """Write ``ignition/config.ign`` atomically and durably, readable by root only (it may hold secrets)."""
    target = root / IGNITION_PATH
    target.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(ignition)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def edit_kargs(root: Path, append: list[str], delete: list[str]) -> list[str]:
    """Apply karg changes to every BLS entry's ``options`` line; returns the entries changed."""
    entries = sorted((root / BLS_DIR).glob("*.conf"))
    if not entries:
        raise ImageVerificationError(f"the boot partition has no BLS entries in {BLS_DIR}")
    changed = []
    for entry in entries:
        lines = entry.read_text().splitlines()
        found = False
        for i, line in enumerate(lines):
            key, _, value = line.partition(" ")
            if key != "options":
                continue
            found = True
            args = [a for a in value.split() if a not in delete]
            args += [a for a in append if a not in args]
            lines[i] = "options " + " ".join(args)
        if not found:
            lines.append("options " + " ".join(append))
        entry.write_text("\n".join(lines) + "\n")
        changed.append(entry.name)
    return changed


def read_kargs(root: Path) -> dict[str, list[str]]:
    """Kernel arguments of each BLS entry, as first boot will see them."""
    out = {}
    for entry in sorted((root / BLS_DIR).glob("*.conf")):
        for line in entry.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "options":
                out[entry.name] = value.split()
    return out
