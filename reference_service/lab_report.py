"""What a lab run measured, read back from its lab-report.json: each phase's time, each machine's boot milestones
seen on its console, and the inventory its agent reported beside what QEMU was told, field by field.

bench/lab.py prints it; tests/e2e/test_lab.py asserts on the same fields.
"""

from __future__ import annotations

import json
from typing import Any

PHASES = {"build": "ISO and images built (or cached)", "network": "bridge, DHCP/DNS, NTP, registry, image pushed",
          "service": "the service listening", "iso": "cluster, infra-env, ISO downloaded through the API",
          "boot": "QEMU started", "registered": "boot to registered", "discovered": "registered to discovered",
          "known": "registered to known", "preparing": "install started to installing",
          "write": "installing to rebooting (the image written)", "installed": "rebooting to installed (disk booted)"}


def fields(spec: dict[str, Any], host: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, what QEMU was told, what the agent reported) for one machine and its host."""
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
        ("SMBIOS UUID", spec["uuid"], host.get("id")),
        ("hostname", spec["name"], inv.get("hostname")),
    ]


def host_of(report: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The host a machine became: the one whose id is the machine's SMBIOS UUID (the agent's host id)."""
    return next((h for h in report.get("hosts", []) if h.get("id") == spec["uuid"]), {})


def lines(report: dict[str, Any]) -> list[str]:
    out = [f"accelerator: {report.get('accel')} ({report.get('kvm_probe', 'KVM not probed')})",
           f"{'phase':<12} {'seconds':>8}  what"]
    out += [f"{name:<12} {seconds:>8.1f}  {PHASES.get(name, '')}" for name, seconds in report.get("phases", {}).items()]
    if "cluster_status" in report:
        booted = report.get("booted_installed_disk", [])
        out.append(f"cluster {report['cluster_status']}; the installed disk's first boot reported: "
                   f"{sum(bool(b) for b in booted)} of {len(report.get('machines', []))} machine(s)")
    for spec in report.get("machines", []):
        host = host_of(report, spec)
        out.append(f"\n{spec['name']}: status {host.get('status', 'not registered')}")
        seen = report.get("consoles", {}).get(spec["name"], {})
        if seen:
            out.append("  on its console (seconds after QEMU started): "
                       + ", ".join(f"{k} {v:.0f}" for k, v in seen.items()))
        out.append(f"  {'field':<18} {'QEMU was told':<38} {'the agent reported':<38} same")
        for name, told, got in fields(spec, host):
            out.append(f"  {name:<18} {told!s:<38} {got!s:<38} {'yes' if str(told) == str(got) else 'NO'}")
    return out
