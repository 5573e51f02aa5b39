"""``agent inventory``: the host's inventory for a person testing hardware, or the JSON the service gets.

    agent inventory [--format json|table] [--root DIR]

``json`` prints what the ``inventory`` step replies (compact, as the Go agent). ``table`` is a summary: CPU,
memory, every disk with its eligibility and the reasons it is not eligible (the agent's and the ones the
service will add for a worker of a current OpenShift), NICs with addresses, system vendor. ``--root`` reads a
host mounted elsewhere (``/host`` in the container image) or a recorded fixture tree.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.host import Host
from agent.inventory.collect import inventory

#: The OpenShift version the table's service-side disk checks assume (drive types allowed depend on it).
ASSUMED_OPENSHIFT = "4.18"


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _rows(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]


def table(inv: dict[str, Any], problems: list[str]) -> str:
    from reference_service.rules.disks import service_disk_reasons

    sv = inv.get("system_vendor") or {}
    cpu = inv.get("cpu") or {}
    mem = inv.get("memory") or {}
    boot = inv.get("boot") or {}
    lines = [
        f"Host      {inv.get('hostname', '?')}",
        f"System    {sv.get('manufacturer', '?')} {sv.get('product_name', '?')}, serial "
        f"{sv.get('serial_number', '?')}, {'virtual' if sv.get('virtual') else 'bare metal'}",
        f"CPU       {cpu.get('count', 0)} x {cpu.get('model_name') or '?'} ({cpu.get('architecture', '?')}, "
        f"{cpu.get('frequency', 0):.0f} MHz, {len(cpu.get('flags') or [])} flags)",
        f"Memory    {_gib(mem.get('physical_bytes', 0))} physical "
        f"(method {mem.get('physical_bytes_method', '?')}), {_gib(mem.get('usable_bytes', 0))} usable",
        f"Boot      {boot.get('current_boot_mode', '?')}, secure boot {boot.get('secure_boot_state', '?')}"
        + (f", PXE {boot['pxe_interface']}" if boot.get("pxe_interface") else ""),
        f"TPM       {inv.get('tpm_version', '?')}",
        f"BMC       {inv.get('bmc_address', '?')} / {inv.get('bmc_v6address', '?')}",
        "",
        f"Disks (the agent's eligibility, plus the service's checks for a worker of OpenShift {ASSUMED_OPENSHIFT})",
    ]
    disk_rows = []
    for d in inv.get("disks") or []:
        agent_reasons = (d.get("installation_eligibility") or {}).get("not_eligible_reasons") or []
        extra = service_disk_reasons(d, inv, role="worker", cluster={"openshift_version": ASSUMED_OPENSHIFT})
        eligible = "yes" if not agent_reasons and not extra else "NO"
        disk_rows.append(
            [
                d.get("name", ""),
                d.get("drive_type", ""),
                _gb(d.get("size_bytes", 0)),
                d.get("id", ""),
                eligible,
                "; ".join([*agent_reasons, *extra]),
            ]
        )
    lines += _rows(["NAME", "TYPE", "SIZE", "ID", "ELIGIBLE", "REASONS"], disk_rows) if disk_rows else ["  (none)"]
    lines += ["", "NICs"]
    nic_rows = []
    for n in inv.get("interfaces") or []:
        speed = n.get("speed_mbps", 0)
        nic_rows.append(
            [
                n.get("name", ""),
                n.get("type", ""),
                n.get("mac_address", ""),
                str(n.get("mtu", "")),
                f"{speed} Mb/s" if speed and speed > 0 else "-",
                "yes" if n.get("has_carrier") else "no",
                " ".join([*n.get("ipv4_addresses", []), *n.get("ipv6_addresses", [])]),
            ]
        )
    lines += _rows(["NAME", "TYPE", "MAC", "MTU", "SPEED", "CARRIER", "ADDRESSES"], nic_rows)
    default = [r for r in inv.get("routes") or [] if r.get("destination") in ("0.0.0.0", "::")]
    lines += [
        "",
        "Default routes  " + (", ".join(f"{r.get('gateway', '-')} via {r['interface']}" for r in default) or "none"),
    ]
    if inv.get("gpus"):
        lines += [
            "GPUs            "
            + ", ".join(f"{g.get('address')} {g.get('vendor', '')} {g.get('name', '')}" for g in inv["gpus"])
        ]
    if problems:
        lines += ["", "Not collected:"] + [f"  {p}" for p in problems]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agent inventory", description="Show this host's inventory.")
    parser.add_argument("--format", choices=("json", "table"), default="json")
    parser.add_argument("--root", default="/", help="root of the host's filesystem or a recorded fixture tree")
    ns = parser.parse_args(argv)
    inv, problems = inventory(Host.at(ns.root))
    if ns.format == "json":
        sys.stdout.write(json.dumps(inv, separators=(",", ":")) + "\n")
        for p in problems:
            print(f"agent inventory: not collected: {p}", file=sys.stderr)
    else:
        print(table(inv, problems))
    return 0
