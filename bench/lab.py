"""The lab's journey in figures: each phase's time, and the inventory the agent reported beside what QEMU was told.

    .venv/bin/python bench/lab.py [--hosts 1] [--kvm auto] [--report DIR/lab-report.json] [LAB FLAGS...]

Runs ``assisted-reference-service lab`` (one machine by default, TCG where KVM hangs) and prints, from the
lab-report.json it writes: build, network, service, ISO download, boot, boot to registered, discovery to known,
and with ``--until installed`` (the lab's default) preparing (install to installing), write (the OS image written
and the reboot issued: every host ``Rebooting``) and installed (reboot, the disk's boot, its first boot's report);
then per machine, field by field, QEMU's value and the agent's (disk size and serial, MAC, memory, CPUs, SMBIOS
vendor, product, serial, UUID) and whether they agree. ``--report`` reads an existing report instead of running.
The Go agent's figures cannot be had here (no RHCOS ISO, no registry access): the column is the expectation
(the same values QEMU set), so the ratio is agreement, not speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def fields(spec: dict[str, Any], host: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    inv = json.loads(host.get("inventory") or "{}")
    disks = [d for d in inv.get("disks", []) if d.get("drive_type") != "ODD"]
    disk = disks[0] if disks else {}
    system = inv.get("system_vendor", {})
    return [
        ("disk size (bytes)", spec["disk_bytes"], disk.get("size_bytes")),
        ("disk serial", spec["disk_serial"], disk.get("serial")),
        ("MAC", spec["mac"], ", ".join(n.get("mac_address", "") for n in inv.get("interfaces", []))),
        ("IPv4", f"{spec['ipv4']}/24", ", ".join(a for n in inv.get("interfaces", [])
                                                 for a in n.get("ipv4_addresses", []))),
        ("memory (MiB)", spec["memory_mib"], (inv.get("memory", {}).get("physical_bytes") or 0) >> 20),
        ("CPUs", spec["cpus"], inv.get("cpu", {}).get("count")),
        ("SMBIOS vendor", spec["vendor"], system.get("manufacturer")),
        ("SMBIOS product", spec["product"], system.get("product_name")),
        ("SMBIOS serial", spec["serial"], system.get("serial_number")),
        ("SMBIOS UUID", spec["uuid"], inv.get("system_vendor", {}).get("uuid") or host.get("id")),
        ("hostname", spec["name"], inv.get("hostname")),
    ]


def show(report: dict[str, Any]) -> None:
    print(f"accelerator: {report.get('accel')} ({report.get('kvm_probe', 'KVM not probed')})")
    print(f"{'phase':<12} {'seconds':>8}")
    for name, seconds in report.get("phases", {}).items():
        print(f"{name:<12} {seconds:>8.1f}")
    if "cluster_status" in report:
        booted = report.get("booted_installed_disk", [])
        print(f"cluster {report['cluster_status']}; the installed disk's first boot reported: "
              f"{sum(bool(b) for b in booted)} of {len(report.get('machines', []))} machine(s)")
    hosts = {h.get("requested_hostname"): h for h in report.get("hosts", [])}
    for spec in report.get("machines", []):
        host: dict[str, Any] = hosts.get(spec["name"]) or next(iter(hosts.values()), {})
        print(f"\n{spec['name']}: status {host.get('status', 'not registered')}")
        print(f"  {'field':<18} {'QEMU was told':<28} {'the agent reported':<28} same")
        for name, told, got in fields(spec, host):
            print(f"  {name:<18} {told!s:<28} {got!s:<28} {'yes' if str(told) == str(got) else 'NO'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", help="read this lab-report.json instead of running a lab")
    ns, rest = p.parse_known_args()
    if ns.report:
        show(json.loads(Path(ns.report).read_text()))
        return 0
    work = Path(tempfile.mkdtemp(prefix="lab-bench-", dir="/var/tmp"))
    cmd = [str(Path(sys.executable).parent / "assisted-reference-service"), "lab", "--work", str(work), *rest]
    code = subprocess.run(cmd).returncode
    show(json.loads((work / "lab-report.json").read_text()))
    return code


if __name__ == "__main__":
    sys.exit(main())
