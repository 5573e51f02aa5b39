"""Does the in-process disk speed measurement agree with fio's? Both on the same device, alternately.

fio runs exactly the Go agent's job (``--rw=write --ioengine=sync --bs=2300 --fdatasync=1 --size=22m``, at
the same 1 MiB offset our check uses) and its ``jobs[0].sync.lat_ns.percentile["99.000000"]`` is compared
with the p99 of ``steps.installation_disk_speed_check.measure`` on a scratch loop device (a file in /tmp,
removed afterwards). ``--throttle-iops N`` puts both under a blkio write-IOPS limit to compare them on a slow
"disk" too (use a smaller ``--size`` then). Needs root and fio. Prints a table and the medians.

    .venv/bin/python bench/disk_speed.py [--runs 5] [--size 23068672] [--throttle-iops 50 --size 262144]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steps.installation_disk_speed_check import BLOCK_SIZE, DEFAULT_SIZE, REGION_OFFSET, measure

BLKIO = Path("/sys/fs/cgroup/blkio")


@contextlib.contextmanager
def scratch_loop(size: int) -> Iterator[str]:
    fd, backing = tempfile.mkstemp(prefix="apre-bench-", suffix=".img")
    os.close(fd)
    os.truncate(backing, size)
    dev = subprocess.run(["losetup", "--find", "--show", backing], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        os.unlink(backing)


@contextlib.contextmanager
def throttled(dev: str, iops: int | None) -> Iterator[None]:
    """Move this process (and so fio, its child) into a blkio cgroup limiting write IOPS on ``dev``."""
    if not iops:
        yield
        return
    group = BLKIO / f"apre-bench-{uuid.uuid4().hex[:6]}"
    group.mkdir()
    try:
        majmin = Path(f"/sys/class/block/{Path(dev).name}/dev").read_text().strip()
        (group / "blkio.throttle.write_iops_device").write_text(f"{majmin} {iops}\n")
        (group / "cgroup.procs").write_text(str(os.getpid()))
        yield
    finally:
        (BLKIO / "cgroup.procs").write_text(str(os.getpid()))
        group.rmdir()


def fio_p99_ms(dev: str, size: int) -> float:
    cmd = ["fio", "--name=test", f"--filename={dev}", f"--offset={REGION_OFFSET}", "--rw=write", "--ioengine=sync",
           f"--size={size // BLOCK_SIZE * BLOCK_SIZE}", f"--bs={BLOCK_SIZE}", "--fdatasync=1", "--output-format=json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600).stdout
    return float(json.loads(out)["jobs"][0]["sync"]["lat_ns"]["percentile"]["99.000000"]) / 1e6


def ours_p99_ms(dev: str, size: int) -> float:
    return measure(dev, size, deadline=float("inf")).p99_ns / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="bytes written per run (default 22 MiB)")
    p.add_argument("--throttle-iops", type=int, default=None, help="blkio write IOPS limit on the device")
    ns = p.parse_args()
    fio: list[float] = []
    ours: list[float] = []
    with scratch_loop(REGION_OFFSET + ns.size + 2 * 1024 * 1024) as dev, throttled(dev, ns.throttle_iops):
        print(f"device {dev}, {ns.size // BLOCK_SIZE} writes of {BLOCK_SIZE} bytes per run, "
              f"throttle {ns.throttle_iops or 'none'} IOPS")
        print(f"{'run':>3} {'fio p99 ms':>11} {'ours p99 ms':>12} {'fio s':>7} {'ours s':>7}")
        for run in range(1, ns.runs + 1):
            t0 = time.monotonic()
            fio.append(fio_p99_ms(dev, ns.size))
            t1 = time.monotonic()
            ours.append(ours_p99_ms(dev, ns.size))
            t2 = time.monotonic()
            print(f"{run:>3} {fio[-1]:>11.3f} {ours[-1]:>12.3f} {t1 - t0:>7.2f} {t2 - t1:>7.2f}")
    f, o = statistics.median(fio), statistics.median(ours)
    print(f"median p99: fio {f:.3f} ms, ours {o:.3f} ms, ours/fio {o / f:.2f}; reported (integer ms, truncated): "
          f"fio {int(f)}, ours {int(o)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
