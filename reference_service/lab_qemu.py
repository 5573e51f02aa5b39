"""The lab's machines: QEMU guests standing in for bare metal, booted from the discovery ISO.

Each machine gets what an inventory reads off real hardware, fixed so a run can be compared with what the agent
reported (bench/lab.py): a sparse raw disk (120 GB by default) with a serial, NICs with fixed MACs on the lab's
bridge (tap devices in the lab's namespace), SMBIOS system strings (vendor, product, serial, UUID), memory and
CPUs. The boot order is the disk, then the CD, as a lab's: a blank disk falls through to the ISO, an installed
one boots. KVM when it works; where ``/dev/kvm`` exists but a guest hangs at kernel start (nested
virtualisation on this machine), ``probe_kvm`` finds out in seconds and the lab uses TCG.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

QEMU = "qemu-system-x86_64"
#: Seconds a KVM guest gets to reach the kernel's panic on a missing root (a working KVM takes about one).
KVM_PROBE_SECONDS = 20.0


@dataclass
class MachineSpec:
    """What QEMU is told about one machine; bench/lab.py sets it beside the inventory the agent reports."""

    index: int
    name: str
    mac: str
    ipv4: str
    memory_mib: int
    cpus: int
    disk_bytes: int
    disk_serial: str
    vendor: str = "Assisted Lab"
    product: str = "QEMU lab machine"
    serial: str = ""
    uuid: str = ""
    tap: str = ""

    def __post_init__(self) -> None:
        self.serial = self.serial or f"LAB-{self.index:04d}"
        self.uuid = self.uuid or f"1ab00000-0000-4000-8000-{self.index:012d}"
        self.tap = self.tap or f"labtap{self.index}"


def mac_of(index: int) -> str:
    """Fixed MACs in QEMU's locally administered range, one per machine."""
    return f"52:54:00:1a:b0:{index:02x}"


@dataclass
class Machine:
    spec: MachineSpec
    disk: Path
    console: Path
    proc: subprocess.Popen[bytes] | None = None
    argv: list[str] = field(default_factory=list)

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except OSError:
            return ""


def make_disk(path: Path, size: int) -> None:
    """A sparse raw disk: it takes no space until the guest writes (an installed image takes a few GB)."""
    with open(path, "wb") as fh:
        fh.truncate(size)


def qemu_argv(spec: MachineSpec, *, iso: Path, disk: Path, console: Path, accel: str) -> list[str]:
    cpu = "host" if accel == "kvm" else "max,la57=off"  # 5-level paging: slower page walks under TCG
    smbios = (f"type=1,manufacturer={spec.vendor},product={spec.product},serial={spec.serial},uuid={spec.uuid}")
    return [QEMU, "-name", spec.name, "-machine", "q35", "-accel", accel if accel == "kvm" else "tcg,thread=multi",
            "-cpu", cpu, "-smp", str(spec.cpus), "-m", str(spec.memory_mib), "-smbios", smbios,
            "-drive", f"file={disk},if=none,id=disk0,format=raw,cache=unsafe,discard=unmap",
            "-device", f"virtio-blk-pci,drive=disk0,serial={spec.disk_serial},bootindex=1",
            "-drive", f"file={iso},if=none,id=cd0,media=cdrom,readonly=on",
            "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=2",
            "-netdev", f"tap,id=net0,ifname={spec.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=net0,mac={spec.mac}",
            "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
            # the serial console: logged to a file, and a socket to log in through (root, no password)
            "-chardev", f"socket,id=ser0,path={console.with_suffix('.sock')},server=on,wait=off,logfile={console}",
            "-serial", "chardev:ser0", "-display", "none", "-vga", "none", "-monitor", "none",
            "-no-user-config", "-nodefaults"]


def start(machine: Machine, *, iso: Path, accel: str, prefix: list[str]) -> None:
    machine.argv = qemu_argv(machine.spec, iso=iso, disk=machine.disk, console=machine.console, accel=accel)
    log = open(machine.console.with_suffix(".qemu.log"), "ab")  # noqa: SIM115 (the child keeps it)
    machine.proc = subprocess.Popen([*prefix, *machine.argv], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    log.close()


def stop(machine: Machine, grace: float = 5) -> None:
    proc = machine.proc
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def probe_kvm(kernel: Path, work: Path, seconds: float = KVM_PROBE_SECONDS) -> tuple[bool, str]:
    """Does a KVM guest get through a kernel's start here? The ISO's kernel, no root: a working KVM panics
    on the missing root within seconds; a hanging one prints nothing. (True, why) or (False, why)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not usable"
    console = work / "kvm-probe.log"
    console.unlink(missing_ok=True)
    argv = [QEMU, "-accel", "kvm", "-cpu", "host", "-m", "256", "-kernel", str(kernel), "-append",
            "console=ttyS0 panic=-1 root=/dev/nonexistent", "-display", "none", "-vga", "none", "-monitor", "none",
            "-serial", f"file:{console}", "-no-reboot", "-nodefaults", "-no-user-config"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    began = time.monotonic()
    deadline = began + seconds
    try:
        while time.monotonic() < deadline:
            text = console.read_text(errors="replace") if console.exists() else ""
            if "Kernel panic" in text or "VFS:" in text:
                return True, f"a KVM guest reached its kernel's root mount in {time.monotonic() - began:.1f} s"
            if proc.poll() is not None and "Kernel panic" not in text:
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip()
                return False, f"qemu -accel kvm exited: {err[-300:] or proc.returncode}"
            time.sleep(0.25)
        return False, f"a KVM guest printed nothing past its kernel's start in {seconds:.0f} s (nested KVM hangs)"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
