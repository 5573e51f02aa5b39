"""Loop devices for tests that write disks (needs root): real block devices over files, removed afterwards."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _run(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}): {proc.stderr}"
    return proc


@contextlib.contextmanager
def loop_device(tmp_path: Path, size: int = 64 * MIB, *, gpt: bool = True) -> Iterator[str]:
    """A loop device over a file of random bytes, with a GPT (one partition) written by sfdisk."""
    backing = tmp_path / f"apre-{uuid.uuid4().hex[:8]}.img"
    with open(backing, "wb") as fh:
        for _ in range(size // MIB):
            fh.write(os.urandom(MIB))
    dev = _run("losetup", "--find", "--show", str(backing)).stdout.strip()
    # Partitions added by BLKPG outlive a detach: drop any an earlier user of this loop device left behind.
    subprocess.run(["partx", "--delete", dev], capture_output=True, timeout=30)
    try:
        if gpt:
            _run("sfdisk", "--quiet", "--wipe", "never", dev, input="label: gpt\nstart=2048, size=16384\n")
        yield dev
    finally:
        subprocess.run(["partx", "--delete", dev], capture_output=True, timeout=30)
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)


def digest(dev: str) -> str:
    with open(dev, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
