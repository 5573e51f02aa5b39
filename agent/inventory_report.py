"""``agent inventory``: the host's inventory for a person testing hardware, or the JSON the service gets.

    agent inventory [--format json|table] [--root DIR]

``json`` prints what the ``inventory`` step replies (compact, as the Go agent). ``table`` is a summary: CPU,
memory, every disk with its eligibility and the reasons it is not eligible (the agent's and the ones the
service will add for a worker of a current OpenShift), NICs with addresses, system vendor. ``--root`` reads a
host mounted elsewhere (``/host`` in the container image) or a recorded fixture tree.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError
from common.host import Host
from inventory.collect import inventory

if TYPE_CHECKING:
    import argparse

#: The OpenShift version the table's service-side disk checks assume (drive types allowed depend on it).
ASSUMED_OPENSHIFT = "4.18"
WIDTH = 80
#: Where each memory figure comes from, in words (the wire keeps the Go agent's method names).
MEMORY_SOURCES = {"dmidecode": "DMI, dmidecode", "ghw": "sysfs memory blocks", "meminfo": "/proc/meminfo"}
#: What the Go agent reports for a host without a BMC.
NO_BMC = ("", "0.0.0.0", "::/0", "::")


def iec(n: float) -> str:
    """Bytes in IEC units (1 GiB = 1024^3 bytes), as the whole table shows sizes."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _rows(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]


def _wrapped(text: str, indent: str) -> list[str]:
    import textwrap  # the table's, not the JSON's: imported when a table is printed

    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False)


def _field(label: str, text: str) -> list[str]:
    """``Label     text``, wrapped to the terminal's 80 columns under the text."""
    import textwrap

    lines = textwrap.wrap(text, WIDTH - 10, break_on_hyphens=False) or [""]
    return [f"{label:<10}{lines[0]}", *(" " * 10 + line for line in lines[1:])]


def _header(inv: dict[str, Any]) -> list[str]:
    sv = inv.get("system_vendor") or {}
    cpu = inv.get("cpu") or {}
    mem = inv.get("memory") or {}
    boot = inv.get("boot") or {}
    method = mem.get("physical_bytes_method", "")
    lines = [
        *_field("Host", str(inv.get("hostname", "?"))),
        *_field("System", f"{sv.get('manufacturer', '?')} {sv.get('product_name', '?')}, serial "
                f"{sv.get('serial_number', '?')}, {'virtual' if sv.get('virtual') else 'bare metal'} (DMI)"),
        *_field("CPU", f"{cpu.get('count', 0)} x {cpu.get('model_name') or '?'} ({cpu.get('architecture', '?')}, "
                f"{cpu.get('frequency', 0):.0f} MHz, {len(cpu.get('flags') or [])} flags; /proc/cpuinfo)"),
        *_field("Memory", f"{iec(mem.get('physical_bytes', 0))} physical ({MEMORY_SOURCES.get(method, method or '?')}),"
                f" {iec(mem.get('usable_bytes', 0))} usable (/proc/meminfo)"),
        *_field("Boot", f"{boot.get('current_boot_mode', '?')}, secure boot {boot.get('secure_boot_state', '?')}"
                + (f", PXE {boot['pxe_interface']}" if boot.get("pxe_interface") else "")),
        *_field("TPM", str(inv.get("tpm_version", "?"))),
    ]
    bmc = [a for a in (inv.get("bmc_address", ""), inv.get("bmc_v6address", "")) if a not in NO_BMC]
    if bmc:
        lines += _field("BMC", " / ".join(bmc) + " (ipmitool)")
    return lines


def _disks(inv: dict[str, Any]) -> list[str]:
    from rules.disk_reasons import service_disk_reasons  # not rules.disks: its host view and cluster model

    lines = _wrapped(f"Disks: the agent's eligibility plus the service's checks for a worker of OpenShift "
                     f"{ASSUMED_OPENSHIFT}; sizes in IEC units (1 GiB = 1024^3 bytes)", "")
    rows, details = [], []
    for d in inv.get("disks") or []:
        agent_reasons = (d.get("installation_eligibility") or {}).get("not_eligible_reasons") or []
        extra = service_disk_reasons(d, inv, role="worker", cluster={"openshift_version": ASSUMED_OPENSHIFT})
        rows.append([d.get("name", ""), d.get("drive_type", ""), iec(d.get("size_bytes", 0)),
                     "yes" if not agent_reasons and not extra else "NO"])
        details.append([*_wrapped(str(d.get("id", "")), "      "),
                        *(line for r in [*agent_reasons, *extra] for line in _wrapped(f"- {r}", "      "))])
    if not rows:
        return [*lines, "  (none)"]
    head, *body = _rows(["NAME", "TYPE", "SIZE", "ELIGIBLE"], rows)
    lines.append(head)
    for row, detail in zip(body, details, strict=True):
        lines += [row, *detail]
    return lines


def _nics(inv: dict[str, Any]) -> list[str]:
    rows, addresses = [], []
    for n in inv.get("interfaces") or []:
        speed = n.get("speed_mbps", 0)
        rows.append([n.get("name", ""), n.get("type", ""), n.get("mac_address", ""), str(n.get("mtu", "")),
                     f"{speed} Mb/s" if speed and speed > 0 else "-", "yes" if n.get("has_carrier") else "no"])
        addresses.append([*n.get("ipv4_addresses", []), *n.get("ipv6_addresses", [])])
    head, *body = _rows(["NAME", "TYPE", "MAC", "MTU", "SPEED", "CARRIER"], rows)
    column = max(len(line) for line in [head, *body]) + 2
    if all(column + len(a) <= WIDTH for a in ["ADDRESSES", *(a for addrs in addresses for a in addrs)]):
        lines = ["NICs", head.ljust(column) + "ADDRESSES"]
        for row, addrs in zip(body, addresses, strict=True):  # one address a line, in the ADDRESSES column
            lines += [row.ljust(column) + (addrs[0] if addrs else ""), *(" " * column + a for a in addrs[1:])]
    else:  # too wide for 80 columns: each NIC's addresses on the lines below it
        lines = ["NICs (addresses below each NIC)", head]
        for row, addrs in zip(body, addresses, strict=True):
            lines += [row, *(f"      {a}" for a in addrs)]
    return [line.rstrip() for line in lines]


def table(inv: dict[str, Any], problems: list[str]) -> str:
    """A summary for a person, within 80 columns: every line is wrapped or laid out to fit."""
    lines = [*_header(inv), "", *_disks(inv), "", *_nics(inv), ""]
    default = [r for r in inv.get("routes") or [] if r.get("destination") in ("0.0.0.0", "::")]
    lines += _wrapped("Default routes: " + (", ".join(f"{r.get('gateway', '-')} via {r['interface']}"
                                                        for r in default) or "none"), "")
    if inv.get("gpus"):
        lines += _wrapped("GPUs: " + ", ".join(f"{g.get('address')} {g.get('vendor', '')} {g.get('name', '')}"
                                               for g in inv["gpus"]), "")
    if problems:
        lines += ["", "Not collected:"] + [line for p in problems for line in _wrapped(p, "  ")]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    from common.argparser import Parser

    p = Parser(prog="agent inventory", description="Show this host's inventory: the JSON the inventory step "
               "replies (compact, as the Go agent), or a table for a person that fits 80 columns.")
    p.add_argument("--format", choices=("json", "table"), default="json", help="default json")
    root = p.add_argument("--root", default="/", help="root of the host's filesystem, or a recorded fixture tree "
                          "(default /)")
    root.complete = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}  # type: ignore[attr-defined]
    return p


def main(argv: list[str]) -> int:
    from agent.parsers import plain_flags  # agent.cli's: already imported

    fast = plain_flags(argv, {"--format": "json", "--root": "/"}, {"--format": ("json", "table")})
    if fast is None:
        ns = parser().parse_args(argv)
        fast = {"--format": ns.format, "--root": ns.root}
    fmt, root = fast["--format"], fast["--root"]
    if not os.path.isdir(root):
        raise ConfigError(f"--root {root}: no such directory", hint="give / or a tree made by 'agent record-host'")
    inv, problems = inventory(Host.at(root))
    if fmt == "json":
        sys.stdout.write(json.dumps(inv, separators=(",", ":")) + "\n")
        for p in problems:
            print(f"agent inventory: not collected: {p}", file=sys.stderr)
    else:
        print(table(inv, problems))
    return 0
