"""The whole journey on one booted machine (issue 24, items 3, 4 and 5): ``assisted-reference-service lab`` with
one QEMU machine (TCG: this machine's nested KVM hangs) booted from the discovery ISO downloaded through the API; the
agent starts from the stock ``agent.service``, registers with the machine's virtual hardware and is discovered (its
inventory compared, field by field, with what QEMU was told: ``lab_report.fields``); the host reaches ``known``,
the installation writes the lab's OS image to its disk (write-image), reboots it (the reboot step), the machine
boots its disk and reports its first boot, and host and cluster are ``installed``. One journey, not two, so CI
boots one machine.

The ISO, the OS image and the agent image are built once and cached in ``.image-cache/``
(``container/iso/build-iso.sh``, ``container/os-image/build-os-image.sh``, ``container/build.sh`` into the tests'
own store); a clean clone builds them here, from Debian's packages. The lab runs in a network namespace of its own,
named after this process; whatever happens (failure, timeout), the lab is stopped, every process left in that
namespace is killed, and the namespace (with its bridge and tap devices) is deleted: the test checks that nothing
is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reference_service import lab_report
from steps.lib import bootfs
from tests.support.image import BUILD_TIMEOUT, cached_image
from tests.support.service import BIN

#: Each of the machine's two stages (boot to known; install, reboot and first boot to installed), as the lab's
#: --timeout: 5 and 12 minutes on a quiet machine, far more when the two cores are shared with other work (the
#: figures are in docs/iso.md and docs/lab-install.md).
STAGE_SECONDS = 1800
#: Building the ISO and the OS image from a clean clone (debootstrap, the packages, squashfs): once per clone.
BUILD_SECONDS = 3600

pytestmark = [
    pytest.mark.timeout(BUILD_TIMEOUT + BUILD_SECONDS + 2 * STAGE_SECONDS + 600),
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces, tap devices)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("qemu-system-x86_64", "dnsmasq", "docker-registry",
                                                         "xorriso", "mksquashfs", "debootstrap")),
                       reason="needs the lab's tools (scripts/setup.sh)"),
]


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def stop_lab(proc: subprocess.Popen[bytes], namespace: str) -> None:
    """The lab asked to stop (it stops its machines and services and deletes its namespace), then made sure of."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    if namespace in namespaces():
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(1)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def test_a_machine_boots_the_iso_is_discovered_with_its_hardware_and_installed(tmp_path: Path) -> None:
    work = tmp_path / "lab"
    namespace = f"labe2e-{os.getpid()}"
    with cached_image() as image:
        argv = [str(BIN / "assisted-reference-service"), "lab", "--hosts", "1", "--cpus", "1", "--memory", "3072",
                "--kvm", "off", "--until", "installed", "--timeout", str(STAGE_SECONDS), "--work", str(work),
                "--namespace", namespace]
        log = open(tmp_path / "lab.out", "wb")  # noqa: SIM115 (the lab writes to it until stopped)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **image.env})
        try:
            code = proc.wait(BUILD_SECONDS + 2 * STAGE_SECONDS + 300)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_lab(proc, namespace)
            log.close()
    out = (tmp_path / "lab.out").read_text(errors="replace")
    assert namespace not in namespaces(), "the lab's namespace (bridge, taps) is gone"
    report = json.loads((work / "lab-report.json").read_text())
    print("\n".join(lab_report.lines(report)))
    assert code == 0, out[-3000:]
    phases = report["phases"]
    assert {"build", "network", "service", "iso", "boot", "registered", "known", "preparing", "write",
            "installed"} <= set(phases), phases
    assert report["accel"] == "tcg" and report["iso_bytes"] > 100 << 20
    spec = report["machines"][0]
    host = lab_report.host_of(report, spec)
    differ = [(name, told, got) for name, told, got in lab_report.fields(spec, host)
              if str(told) != str(got) and name != "hostname"]
    assert differ == [], differ
    console = report["consoles"][spec["name"]]
    assert {"kernel runs /init", "systemd starts", "Ignition applied", "agent started"} <= set(console)

    # installed: the report came from the installed disk's first boot, and the disk is the one the inventory named
    assert host["status"] == "installed" and host["progress"]["current_stage"] == "Done", host.get("status_info")
    assert report["cluster_status"] == "installed"
    assert report["booted_installed_disk"] == [True]
    (disk,) = [d for d in json.loads(host["inventory"])["disks"] if d.get("drive_type") != "ODD"]
    assert host["installation_disk_path"] == disk["path"], "the installation wrote the disk the inventory named"
    check_written_disk(work / f"{spec['name']}.disk")


def check_written_disk(disk: Path) -> None:
    """The machine's disk holds the lab's OS image as write-image left it: its GPT, checked as the step checks
    it (CRCs, the backup header where the primary says), with the image's partitions."""
    with open(disk, "rb") as fh:
        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        table = bootfs.parse_gpt(read_at, 512)
    assert [p.name for p in table.partitions] == ["boot", "root"]
