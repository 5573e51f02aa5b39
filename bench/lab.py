"""The lab's journey in figures: each phase's time, and the inventory the agent reported beside what QEMU was told.

    .venv/bin/python bench/lab.py [--report DIR/lab-report.json] [LAB FLAGS...]

Runs ``assisted-reference-service lab`` (one machine by default, TCG where KVM hangs) and prints, from the
lab-report.json it writes: build, network, service, ISO download, boot, boot to registered, registered to
discovered (or known); each machine's boot milestones as its serial console showed them; then per machine, field
by field, QEMU's value and the agent's (disk size and serial, MAC, IPv4, memory, CPUs, SMBIOS vendor, product,
serial, UUID, hostname) and whether they agree. ``--report`` reads an existing report instead of running.
The Go agent's figures cannot be had here (no RHCOS ISO, no registry access): the column beside the agent's is
the expectation (the values QEMU set), so the comparison is agreement, not speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from reference_service.lab_report import lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", help="read this lab-report.json instead of running a lab")
    ns, rest = p.parse_known_args()
    if ns.report:
        print("\n".join(lines(json.loads(Path(ns.report).read_text()))))
        return 0
    work = Path(tempfile.mkdtemp(prefix="lab-bench-", dir="/var/tmp"))
    cmd = [str(Path(sys.executable).parent / "assisted-reference-service"), "lab", "--work", str(work), *rest]
    code = subprocess.run(cmd).returncode
    print("\n".join(lines(json.loads((work / "lab-report.json").read_text()))))
    return code


if __name__ == "__main__":
    sys.exit(main())
