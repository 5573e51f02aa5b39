"""Benchmark of ``agent inventory``: median wall time and peak RSS of N runs, each a fresh process.

    .venv/bin/python bench/inventory.py [-n 15] [--root DIR] [--format json|table]

Targets on the CI machine (2 vCPUs): at most 0.25 s wall and 40 MiB peak RSS, median of the runs (the Go agent
takes about 0.6 s and 38 MB there). Peak RSS is the kernel's ``ru_maxrss`` of each child, taken with wait4().
Figures are printed, not asserted: timing belongs to benchmarks, not to tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

AGENT = Path(sys.executable).parent / "agent"
TARGET_WALL_S = 0.25
TARGET_RSS_MIB = 40.0


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(argv)} failed with {proc.returncode}: {err}")
    return wall, usage.ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=15, help="runs (default 15), after one warm-up run")
    parser.add_argument("--root", default="/", help="host root or fixture tree to inventory")
    parser.add_argument("--format", default="json", choices=("json", "table"))
    ns = parser.parse_args()
    argv = [str(AGENT), "inventory", "--format", ns.format, "--root", ns.root]
    run_once(argv)  # warm-up: .pyc files, page cache
    walls, rss = zip(*(run_once(argv) for _ in range(ns.n)), strict=True)
    wall_med, rss_med = statistics.median(walls), statistics.median(rss)
    print(f"agent inventory --format {ns.format} --root {ns.root}: {ns.n} runs")
    print(
        f"  wall     median {wall_med * 1000:6.1f} ms  min {min(walls) * 1000:6.1f}  max {max(walls) * 1000:6.1f}"
        f"  (target <= {TARGET_WALL_S * 1000:.0f} ms: {'ok' if wall_med <= TARGET_WALL_S else 'MISSED'})"
    )
    print(
        f"  peak RSS median {rss_med:6.1f} MiB min {min(rss):6.1f}  max {max(rss):6.1f}"
        f"  (target <= {TARGET_RSS_MIB:.0f} MiB: {'ok' if rss_med <= TARGET_RSS_MIB else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
