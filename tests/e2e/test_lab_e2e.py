"""The whole journey on one booted machine (issue 24, item 5): ``assisted-reference-service lab`` boots a QEMU
machine (TCG where KVM hangs) from the discovery ISO downloaded through the API; the host registers with its
virtual hardware and reaches ``known``; the installation writes the lab's OS image to its disk (write-image),
reboots it (the reboot step), the machine boots its disk and reports its first boot; host and cluster are
``installed``. The ISO and the OS image are built once and cached in .image-cache/; the agent image is built
from this clone (its Debian base and wheels cached there).

Bounded: the lab's own timeout per stage, and this test's on the whole run; the lab removes its namespace and
stops its machine even when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from steps.lib import bootfs
from tests.support.paths import ROOT

TOOLS = ("qemu-system-x86_64", "dnsmasq", "chronyd", "docker-registry", "podman", "buildah", "xorriso", "ip")
#: Seconds the lab may take per stage (discovery, then installation) on a loaded 2-core machine under TCG.
STAGE_TIMEOUT = 3600

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces, tap devices)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS), reason="needs the lab's tools (scripts/setup.sh)"),
]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path.name}: none)"


#: The agent image the test builds from this clone: the lab reuses any localhost/assisted-agent:latest in podman's
#: store, which may be older than the code under test (its steps run on the booted machine).
IMAGE = "localhost/assisted-agent:lab-e2e"


def test_one_machine_from_the_iso_to_installed(tmp_path: Path) -> None:
    build = subprocess.run(["bash", str(ROOT / "container" / "build.sh"), "--tag", IMAGE], cwd=ROOT,
                           capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stderr[-3000:]
    work = tmp_path / "lab"
    cmd = [str(Path(sys.executable).parent / "assisted-reference-service"), "lab", "--hosts", "1", "--cpus", "1",
           "--memory", "3072", "--until", "installed", "--agent-image", IMAGE, "--timeout", str(STAGE_TIMEOUT),
           "--work", str(work)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=2 * STAGE_TIMEOUT + 3600)
    report: dict[str, Any] = json.loads((work / "lab-report.json").read_text())
    why = (f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}\n--- console\n{tail(work / 'lab-0.console')}\n"
           f"--- service\n{tail(work / 'service.log')}")
    assert run.returncode == 0, why
    check_journey(report, why)
    check_written_disk(work / "lab-0.disk")


def check_journey(report: dict[str, Any], why: str = "") -> None:
    """What lab-report.json must show after the whole journey of one machine."""
    phases = report["phases"]
    for phase in ("build", "network", "service", "iso", "boot", "registered", "known", "preparing", "write",
                  "installed"):
        assert phase in phases, f"{phase} missing from {phases}\n{why}"
    (host,) = report["hosts"]
    assert host["status"] == "installed" and host["progress"]["current_stage"] == "Done", why
    assert report["cluster_status"] == "installed", why
    assert report["booted_installed_disk"] == [True], f"the report came from the installed disk's first boot{why}"

    # the inventory the agent reported, field by field, is the hardware QEMU was told
    (machine,) = report["machines"]
    inv = json.loads(host["inventory"])
    (disk,) = [d for d in inv["disks"] if d.get("drive_type") != "ODD"]
    assert (disk["size_bytes"], disk["serial"]) == (machine["disk_bytes"], machine["disk_serial"])
    assert [n["mac_address"] for n in inv["interfaces"]] == [machine["mac"]]
    assert inv["memory"]["physical_bytes"] >> 20 == machine["memory_mib"]
    assert inv["cpu"]["count"] == machine["cpus"]
    system = inv["system_vendor"]
    assert (system["manufacturer"], system["product_name"], system["serial_number"]) == (
        machine["vendor"], machine["product"], machine["serial"])
    assert host["id"] == machine["uuid"]
    assert host["installation_disk_path"] == disk["path"], "the installation wrote the disk the inventory named"


def check_written_disk(disk: Path) -> None:
    """The machine's disk holds the lab's OS image as write-image left it: its GPT, checked as the step checks
    it (CRCs, the backup header where the primary says), with the image's partitions."""
    with open(disk, "rb") as fh:
        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        table = bootfs.parse_gpt(read_at, 512)
    assert [p.name for p in table.partitions] == ["boot", "root"]
