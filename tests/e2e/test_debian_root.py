"""container/debian-root.sh: the ISO's and the OS image's Debian roots survive one failed fetch from Debian's
mirror (a CI run's ISO build died on "Failed getting release file"). A stand-in ``debootstrap`` first in PATH
fails as the real one did, then succeeds: the build goes on, from an empty root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.paths import ROOT

FAKE = """#!/bin/sh
# debootstrap --variant=minbase SUITE ROOT MIRROR, as the scripts call it
root=$3
n=$(cat "$CALLS" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$CALLS"
ls -A "$root" >"$CALLS.seen-$n"
touch "$root/partial-$n"
if [ "$n" -lt "$FAIL_TIMES" ]; then echo "E: Failed getting release file $4/dists/$2/Release"; exit 1; fi
mkdir -p "$root/etc" && echo bookworm >"$root/etc/debian_version"
"""


def run(tmp_path: Path, fail_times: int) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "debootstrap").write_text(FAKE)
    (bin_dir / "debootstrap").chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    script = ('set -euo pipefail; log() { echo "test: $*" >&2; }; . container/debian-root.sh; '
              f'debootstrap_root {root} {tmp_path / "log"} bookworm http://mirror.invalid/debian')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "FAIL_TIMES": str(fail_times), "DEBIAN_RETRY_SECONDS": "0"}
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_failed_fetch_is_tried_again_from_an_empty_root(tmp_path: Path) -> None:
    proc = run(tmp_path, fail_times=2)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls").read_text().strip() == "2"
    assert (tmp_path / "calls.seen-2").read_text() == "", "the second attempt started from an empty root"
    assert (tmp_path / "root" / "etc" / "debian_version").exists()
    assert "attempt 1 of 3" in proc.stderr and "Failed getting release file" in proc.stderr
