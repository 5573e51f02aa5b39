"""VM detection and the /sysroot source without a command: the same answers as systemd-detect-virt and findmnt."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from common.host import Host
from inventory.boot import device_type, mount_source
from inventory.virt import detect_vm
from tests.support.paths import FIXTURES

FIXTURES = FIXTURES
MACHINES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def recorded(machine: str, command: str) -> dict[str, object] | None:
    records = json.loads((FIXTURES / machine / ".recorded" / "commands.json").read_text())
    return next((r for r in records if r["argv"][0] == command), None)


@pytest.mark.parametrize("machine", MACHINES)
def test_recorded_machines_answer_as_systemd_detect_virt_did(machine: str) -> None:
    rec = recorded(machine, "systemd-detect-virt")
    assert rec is not None, "every fixture recorded systemd-detect-virt --vm"
    assert detect_vm(Host(FIXTURES / machine)) is (str(rec["stdout"]).strip() != "none")


@pytest.mark.skipif(shutil.which("systemd-detect-virt") is None, reason="needs systemd-detect-virt")
def test_this_machine_answers_as_systemd_detect_virt() -> None:
    out = subprocess.run(["systemd-detect-virt", "--vm"], capture_output=True, text=True, check=False).stdout
    assert detect_vm(Host()) is (out.strip() != "none")


@pytest.mark.skipif(shutil.which("findmnt") is None, reason="needs findmnt")
@pytest.mark.parametrize("target", ["/", "/proc", "/sys", "/sysroot", "/no/such/mount"])
def test_mountinfo_source_is_findmnts(target: str) -> None:
    proc = subprocess.run(["findmnt", "--noheadings", "--output", "SOURCE", target],
                          capture_output=True, text=True, check=False)
    expected = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else None
    assert mount_source(Path("/proc/self/mountinfo").read_text(), target) == expected


def write(root: Path, files: dict[str, str | bytes]) -> Host:
    for name, content in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return Host(root)


def smbios(vm_bit: bool) -> bytes:
    table = bytearray(24)
    table[1] = 24
    table[0x13] = 0x10 if vm_bit else 0
    return bytes(table)


BARE_CPU = "vendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse2\n"
VM_CPU = "vendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse2 hypervisor\n"


@pytest.mark.parametrize(
    ("files", "virtual"),
    [
        ({"/proc/cpuinfo": BARE_CPU, "/sys/class/dmi/id/sys_vendor": "Dell Inc.\n"}, False),
        ({"/proc/cpuinfo": BARE_CPU, "/sys/class/dmi/id/sys_vendor": "VMware, Inc.\n"}, True),
        ({"/proc/cpuinfo": BARE_CPU, "/sys/class/dmi/id/board_vendor": "Xen\n"}, True),
        ({"/proc/cpuinfo": VM_CPU}, True),
        # an EC2 .metal instance: Amazon's DMI strings, no hypervisor, the SMBIOS VM bit clear
        ({"/proc/cpuinfo": BARE_CPU, "/sys/class/dmi/id/sys_vendor": "Amazon EC2\n",
          "/sys/firmware/dmi/entries/0-0/raw": smbios(False)}, False),
        ({"/proc/cpuinfo": VM_CPU, "/sys/class/dmi/id/sys_vendor": "Amazon EC2\n",
          "/sys/firmware/dmi/entries/0-0/raw": smbios(True)}, True),
        ({"/proc/cpuinfo": BARE_CPU, "/sys/firmware/dmi/entries/0-0/raw": smbios(True)}, True),
        ({"/proc/cpuinfo": BARE_CPU, "/proc/xen/capabilities": "control_d\n"}, False),  # Xen's dom0 is the host
        ({"/proc/cpuinfo": BARE_CPU, "/proc/xen/capabilities": ""}, True),
        ({"/proc/cpuinfo": BARE_CPU, "/sys/hypervisor/type": "xen\n"}, True),
        ({"/proc/device-tree/compatible": b"qemu,pseries\x00"}, True),
        ({"/proc/sysinfo": "VM00 Control Program: z/VM    7.2.0\n"}, True),
        ({"/proc/cpuinfo": "vendor_id\t: User Mode Linux\n"}, True),
    ],
)
def test_vm_detection_rules(tmp_path: Path, files: dict[str, str | bytes], virtual: bool) -> None:
    assert detect_vm(write(tmp_path, files)) is virtual


MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 7:0 / /sysroot ro shared:9 - squashfs /dev/sda2 ro\n"
    "31 30 7:1 / /sysroot ro shared:10 master:3 - squashfs /dev/loop1 ro\n"
    "40 22 0:5 / /run/media\\040x rw - tmpfs tmp\\040fs rw\n"
)


def test_topmost_mount_and_escapes() -> None:
    assert mount_source(MOUNTINFO, "/sysroot") == "/dev/loop1"
    assert mount_source(MOUNTINFO, "/run/media x") == "tmp fs"
    assert mount_source(MOUNTINFO, "/boot") is None


@pytest.mark.parametrize(("source", "kind"), [("/dev/loop1", "ephemeral"), ("/dev/sda2", "persistent"), ("", "")])
def test_device_type_from_mountinfo(tmp_path: Path, source: str, kind: str) -> None:
    line = f"31 1 7:1 / /sysroot ro - squashfs {source} ro\n" if source else "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    assert device_type(write(tmp_path, {"/proc/self/mountinfo": line})) == kind


@pytest.mark.parametrize("machine", MACHINES)
def test_recorded_trees_without_mountinfo_replay_findmnt(machine: str) -> None:
    rec = recorded(machine, "findmnt")
    expected = "" if rec is None or rec["exit_code"] != 0 else (
        "ephemeral" if str(rec["stdout"]).startswith("/dev/loop") else "persistent")
    assert device_type(Host.at(FIXTURES / machine)) == expected
