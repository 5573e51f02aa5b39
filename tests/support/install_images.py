"""Disk images and loop devices for the install tests: built here, with the real tools, never downloaded.

The image is laid out like a CoreOS metal image: a GPT with ``EFI-SYSTEM``, ``boot`` (ext4 labelled ``boot``,
holding ``loader/entries/*.conf`` BLS entries) and ``root`` (ext4 labelled ``root``). Filesystems are made with
``mkfs.ext4 -E offset=... -d DIR`` straight into the image file, so building needs no loop device. Every loop
backing file and mount point created here starts with ``ainst`` so parallel test runs of other areas never
collide with ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "ainst"
MIB = 1 << 20
BLS_OPTIONS = "root=UUID=00000000-0000-4000-8000-000000000001 rw ignition.platform.id=metal $ignition_firstboot"


@dataclass(frozen=True)
class TestImage:
    raw: Path
    size: int
    raw_sha256: str
    #: compression -> (file, sha256 of the file)
    compressed: dict[str, tuple[Path, str]]

    def file(self, compression: str) -> tuple[Path, str]:
        return (self.raw, self.raw_sha256) if compression == "none" else self.compressed[compression]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kw)  # type: ignore


def build_image(workdir: Path, *, size_mib: int = 48, seed: int = 7, root_payload_mib: int = 8) -> TestImage:
    """A CoreOS-like GPT image with realistic (partly compressible, partly random) content."""
    raw = workdir / f"{PREFIX}-image.raw"
    size = size_mib * MIB
    with open(raw, "wb") as fh:
        fh.truncate(size)
    boot_start, boot_size = 5 * MIB, 16 * MIB
    root_start = boot_start + boot_size
    root_size = size - root_start - MIB  # leave room for the backup GPT
    layout = (
        "label: gpt\n"
        f"start=2048, size={4 * MIB // 512}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI-SYSTEM\n"
        f"start={boot_start // 512}, size={boot_size // 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\n"
        f"start={root_start // 512}, size={root_size // 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n"
    )
    run(["sfdisk", "--quiet", str(raw)], input=layout)
    boot_dir = workdir / "boot-tree"
    entries = boot_dir / "loader" / "entries"
    entries.mkdir(parents=True)
    for n, version in ((1, "416.94.202405291527-0"), (2, "416.94.202406010000-0")):
        (entries / f"ostree-{n}-rhcos.conf").write_text(
            f"title Red Hat Enterprise Linux CoreOS {version} (ostree:{n - 1})\nversion {n}\n"
            f"options {BLS_OPTIONS} ostree=/ostree/boot.1/rhcos/{n}/0\n"
            f"linux /ostree/rhcos-{n}/vmlinuz-5.14.0\ninitrd /ostree/rhcos-{n}/initramfs-5.14.0.img\n"
        )
    (boot_dir / "ignition.firstboot").write_text("")
    root_dir = workdir / "root-tree"
    (root_dir / "etc").mkdir(parents=True)
    (root_dir / "etc" / "os-release").write_text('NAME="Red Hat Enterprise Linux CoreOS"\nVERSION_ID="4.16"\n')
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(512)]
    with open(root_dir / "usr-share-doc.txt", "wb") as fh:  # compressible text
        for _ in range(root_payload_mib * MIB // 6):
            fh.write(rng.choice(words) + b" ")
    (root_dir / "firmware.bin").write_bytes(rng.randbytes(root_payload_mib * MIB // 4))  # incompressible
    for label, start, length, tree in (("boot", boot_start, boot_size, boot_dir), ("root", root_start, root_size,
                                                                                      root_dir)):
        run(["mkfs.ext4", "-q", "-F", "-L", label, "-E", f"offset={start}", "-d", str(tree), str(raw),
             f"{length // 1024}k"])
    compressed = {}
    for kind, argv, suffix in (("xz", ["xz", "-T1", "-3", "-c"], "xz"), ("gzip", ["gzip", "-c"], "gz"),
                               ("zstd", ["zstd", "-q", "-c"], "zst")):
        out = workdir / f"{PREFIX}-image.raw.{suffix}"
        with open(raw, "rb") as src, open(out, "wb") as dst:
            subprocess.run(argv, stdin=src, stdout=dst, check=True, timeout=300)
        compressed[kind] = (out, sha256_file(out))
    return TestImage(raw, size, sha256_file(raw), compressed)


@dataclass
class LoopDevice:
    path: str
    backing: Path

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb", buffering=0) as fh:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            fh.seek(offset)
            return fh.read(length)

    def write(self, offset: int, data: bytes) -> None:
        with open(self.path, "r+b", buffering=0) as fh:
            fh.seek(offset)
            fh.write(data)
            os.fsync(fh.fileno())

    def partitions(self) -> list[str]:
        sysdir = Path("/sys/class/block") / self.name
        return sorted(f"/dev/{p.name}" for p in sysdir.iterdir() if p.name.startswith(self.name))


@contextlib.contextmanager
def loop_device(size: int, directory: Path | None = None) -> Iterator[LoopDevice]:
    """A loop device over a sparse ``ainst-*`` backing file; detached (and its mounts undone) at the end."""
    fd, name = tempfile.mkstemp(prefix=f"{PREFIX}-loop-", suffix=".img", dir=directory)
    os.close(fd)
    backing = Path(name)
    os.truncate(backing, size)
    path = run(["losetup", "--find", "--show", "--direct-io=on", str(backing)]).stdout.strip()
    dev = LoopDevice(path, backing)
    try:
        yield dev
    finally:
        for node in [*dev.partitions(), dev.path]:
            for _ in range(3):
                if subprocess.run(["findmnt", "-n", "--source", node], capture_output=True).returncode != 0:
                    break
                subprocess.run(["umount", node], capture_output=True)
        subprocess.run(["losetup", "-d", path], capture_output=True)
        backing.unlink(missing_ok=True)


@contextlib.contextmanager
def mounted(device: str) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-mnt-"))
    run(["mount", device, str(where)])
    try:
        yield where
    finally:
        for _ in range(10):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        with contextlib.suppress(OSError):
            where.rmdir()
