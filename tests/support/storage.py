"""A real ext4 filesystem on a loop device for the service's database: frozen with ``fsfreeze`` (a snapshot, a
stuck disk), or cut from its power; and clients registering hosts as fast as the service acknowledges them.

The power cut: what a disk holds when the power goes is what the kernel wrote to it; what sat in the page
cache is lost. The loop device's backing file holds exactly what the filesystem wrote to the device (it is the
device), so a copy of it, taken while the processes writing are stopped and without syncing anything, is the
disk as a power cut leaves it: everything an fsync/fdatasync pushed is in it, dirty pages are not (mounted with
a long journal commit interval so that ext4's own 5 s commits do not write the data out behind the test's back).
What it does not model: the device's own volatile write cache (the loop device has none: a flush is a no-op
for the copy) and torn sectors; the same holds for a QEMU guest killed with cache=writeback, whose writes are
in the host's page cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.service import BASE

#: ext4's journal commit interval (s) for the test filesystem: long, so only fsync makes data durable.
JOURNAL_COMMIT = 300


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@dataclass
class Ext4:
    backing: Path
    device: str
    mount: Path

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """``fsfreeze -f``: every write to the filesystem blocks (uninterruptibly) until ``fsfreeze -u``."""
        _run("fsfreeze", "-f", str(self.mount))
        try:
            yield
        finally:
            _run("fsfreeze", "-u", str(self.mount))

    def power_cut_copy(self, dest: Path) -> Path:
        """The device as it is now, page cache left out (the caller stopped what writes to it)."""
        with open(self.backing, "rb") as src, open(dest, "wb") as out:
            os.posix_fadvise(src.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            shutil.copyfileobj(src, out, 1 << 20)
        return dest


def _loop_mount(backing: Path, where: Path, options: str) -> str:
    device = _run("losetup", "--find", "--show", str(backing))
    try:
        _run("mount", "-t", "ext4", "-o", options, device, str(where))
    except subprocess.CalledProcessError:
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=60)
        raise
    return device


def _release(device: str, where: Path) -> None:
    subprocess.run(["fsfreeze", "-u", str(where)], capture_output=True, timeout=60)  # never left frozen
    for _ in range(120):
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=60).returncode == 0:
            break
        time.sleep(0.25)
    else:  # still busy after 30 s: detached now, let go of by the kernel once the last user closes it
        holders = subprocess.run(["fuser", "-vm", str(where)], capture_output=True, text=True, timeout=60)
        print(f"{where} still busy: {holders.stderr.strip()}; unmounted lazily", flush=True)
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=60)
    subprocess.run(["losetup", "-d", device], capture_output=True, timeout=60)
    with contextlib.suppress(OSError):
        where.rmdir()


@contextlib.contextmanager
def ext4(directory: Path, size_mib: int = 128) -> Iterator[Ext4]:
    """A fresh ext4 (fully initialised: no lazy init writing behind the test's back), mounted; undone at the
    end, thawed first if the test left it frozen."""
    backing = directory / "ext4.img"
    backing.touch()
    os.truncate(backing, size_mib << 20)
    _run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(backing))
    where = Path(tempfile.mkdtemp(prefix="ext4-", dir=directory))
    device = _loop_mount(backing, where, f"commit={JOURNAL_COMMIT}")
    try:
        yield Ext4(backing, device, where)
    finally:
        _release(device, where)


@contextlib.contextmanager
def mounted_copy(image: Path) -> Iterator[Path]:
    """A power-cut copy mounted (ext4 replays its journal, as at boot after the cut)."""
    where = Path(tempfile.mkdtemp(prefix="ext4-after-", dir=image.parent))
    device = _loop_mount(image, where, "rw")
    try:
        yield where
    finally:
        _release(device, where)


class Registrations:
    """Threads registering new hosts as fast as answers come: which ids the service acknowledged (201)."""

    def __init__(self, service_url: str, infra_env_id: str, threads: int = 6) -> None:
        self.url = f"{service_url}{BASE}/v2/infra-envs/{infra_env_id}/hosts"
        self.acknowledged: list[str] = []
        self.refused: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                host_id = str(uuid.uuid4())
                try:
                    resp = session.post(self.url, json={"host_id": host_id}, timeout=40)
                except requests.RequestException:
                    continue
                if resp.status_code == 201:
                    self.acknowledged.append(host_id)
                else:
                    self.refused.append(resp.status_code)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
