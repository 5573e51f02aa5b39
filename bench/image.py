"""Benchmark: the agent image's sizes and start times.

Prints the image's size, the self-contained /usr/bin/agent's size, the median start time of
``/usr/bin/agent --version`` copied out of the image (a one-file PyInstaller ELF unpacks itself on every start)
beside ``python3 -c pass`` on this host (the reference: a bare interpreter), and the start of a step process
inside the image (``python3 -c 'import agent.step_process'`` of the image's Python, run in the image's root with
chroot), which is what each step pays. Run as root after ``bash container/build.sh``:
``.venv/bin/python bench/image.py [--image localhost/assisted-agent:latest] [--runs 11]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="localhost/assisted-agent:latest")
    p.add_argument("--runs", type=int, default=11)
    ns = p.parse_args()
    size = int(subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", ns.image], check=True,
                              capture_output=True, text=True).stdout.strip())
    ctr = subprocess.run(["buildah", "from", "--pull-never", ns.image], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    try:
        root = Path(subprocess.run(["buildah", "mount", ctr], check=True, capture_output=True,
                                   text=True).stdout.strip())
        with tempfile.TemporaryDirectory() as tmp:
            elf = Path(tmp) / "agent"
            shutil.copy2(root / "usr/bin/agent", elf)
            elf_ms = _median_ms([str(elf), "--version"], ns.runs)
            python_ms = _median_ms([sys.executable, "-c", "pass"], ns.runs)
            step_ms = _median_ms(["chroot", str(root), "/usr/lib/assisted-agent/bin/python3", "-c",
                                  "import agent.step_process"], ns.runs)
            bare_ms = _median_ms(["chroot", str(root), "/usr/lib/assisted-agent/bin/python3", "-c", "pass"], ns.runs)
            print(f"image {ns.image}: {size / 1e6:.0f} MB")
            print(f"/usr/bin/agent: {elf.stat().st_size / 1e6:.1f} MB")
            print(f"/usr/bin/agent --version: {elf_ms:.0f} ms median of {ns.runs} "
                  f"(python3 -c pass here: {python_ms:.0f} ms, ratio {elf_ms / python_ms:.1f})")
            print(f"step process start in the image: {step_ms:.0f} ms "
                  f"(bare interpreter there: {bare_ms:.0f} ms, ratio {step_ms / bare_ms:.1f}; "
                  f"the ELF's start is {elf_ms / step_ms:.1f}x that)")
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
