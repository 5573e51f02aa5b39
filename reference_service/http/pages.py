"""A read-only HTML page of the reference service: every host, why it is known or insufficient, its hardware.

Plain server-side HTML with no scripts: a person following a discovery opens ``/`` and reads each host's
status, the validations with their messages (failures first), and an inventory summary where every disk says
whether it is eligible for installation and, if not, why. Every value is escaped: inventories come from hosts.
"""

from __future__ import annotations

from html import escape
from typing import Any

from reference_service.rules.documents import parse_json_field

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
h2{margin-bottom:.2em}
table{border-collapse:collapse;margin:.4em 0 1em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top;font-size:90%}
.failure,.error,.no{color:#b00020;font-weight:bold}
.pending{color:#a60}
.success,.yes{color:#176f2c}
.host{border-top:2px solid #444;padding-top:.5em;margin-top:1.5em}
"""
_STATUS_ORDER = {"failure": 0, "error": 1, "pending": 2, "success": 3, "disabled": 4}


def _gib(n: Any) -> str:
    return f"{int(n or 0) / (1 << 30):.1f} GiB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Cells are already-escaped HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _validations(host: dict[str, Any]) -> str:
    info = parse_json_field(host, "validations_info") or {}
    rows = []
    for category, results in sorted(info.items()):
        for r in results:
            status = str(r.get("status", ""))
            rows.append(
                (
                    _STATUS_ORDER.get(status, 5),
                    category,
                    str(r.get("id", "")),
                    status,
                    str(r.get("message", "")),
                )
            )
    rows.sort()
    if not rows:
        return "<p>No validations computed yet.</p>"
    return _table(
        ["category", "validation", "status", "message"],
        [[escape(c), escape(i), f'<span class="{escape(s)}">{escape(s)}</span>', escape(m)] for _, c, i, s, m in rows],
    )


def _inventory(host: dict[str, Any]) -> str:
    inv = parse_json_field(host, "inventory")
    if not isinstance(inv, dict):
        return "<p>No inventory received yet.</p>"
    cpu, mem, sv = inv.get("cpu") or {}, inv.get("memory") or {}, inv.get("system_vendor") or {}
    parts = [
        "<p>"
        f"<b>System</b> {escape(str(sv.get('manufacturer', '')))} {escape(str(sv.get('product_name', '')))}"
        f"{' (virtual)' if sv.get('virtual') else ''} &middot; "
        f"<b>CPU</b> {int(cpu.get('count') or 0)} &times; {escape(str(cpu.get('model_name', '')))} "
        f"({escape(str(cpu.get('architecture', '')))}) &middot; "
        f"<b>Memory</b> {_gib(mem.get('physical_bytes'))} "
        f"({escape(str(mem.get('physical_bytes_method', '?')))})"
        "</p>"
    ]
    chosen = host.get("installation_disk_id")
    disk_rows = []
    for d in inv.get("disks") or []:
        elig = d.get("installation_eligibility") or {}
        ok = bool(elig.get("eligible"))
        reasons = "<br>".join(escape(str(r)) for r in elig.get("not_eligible_reasons") or [])
        mark = " (installation disk)" if chosen and d.get("id") == chosen else ""
        disk_rows.append(
            [
                escape(str(d.get("name", ""))) + mark,
                escape(str(d.get("drive_type", ""))),
                f"{int(d.get('size_bytes') or 0) / 1e9:.1f} GB",
                escape(str(d.get("id", ""))),
                f'<span class="{"yes" if ok else "no"}">{"yes" if ok else "no"}</span>',
                reasons,
            ]
        )
    parts.append(_table(["disk", "type", "size", "id", "eligible", "why not"], disk_rows))
    nic_rows = []
    for n in inv.get("interfaces") or []:
        addrs = [*(n.get("ipv4_addresses") or []), *(n.get("ipv6_addresses") or [])]
        nic_rows.append(
            [
                escape(str(n.get("name", ""))),
                escape(str(n.get("type", ""))),
                escape(str(n.get("mac_address", ""))),
                escape(str(n.get("mtu", ""))),
                "yes" if n.get("has_carrier") else "no",
                escape(" ".join(addrs)),
            ]
        )
    parts.append(_table(["NIC", "type", "MAC", "MTU", "carrier", "addresses"], nic_rows))
    return "".join(parts)


def _host_name(host: dict[str, Any]) -> str:
    inv = parse_json_field(host, "inventory")
    name = host.get("requested_hostname") or (inv.get("hostname") if isinstance(inv, dict) else None)
    return str(name or host.get("id", ""))


def render_hosts_page(service: Any) -> str:
    hosts = sorted(service.store.list_hosts(), key=lambda h: (str(h.get("cluster_id") or ""), _host_name(h)))
    sections = []
    for h in hosts:
        status = str(h.get("status", ""))
        sections.append(
            f'<div class="host"><h2>{escape(_host_name(h))}</h2>'
            f"<p><b>id</b> {escape(str(h.get('id', '')))} &middot; <b>cluster</b> "
            f"{escape(str(h.get('cluster_id') or 'none'))} &middot; "
            f"<b>role</b> {escape(str(h.get('role', '')))}"
            f"</p><p><b>status</b> {escape(status)}: {escape(str(h.get('status_info', '')))}</p>"
            f"{_validations(h)}{_inventory(h)}</div>"
        )
    body = "".join(sections) or "<p>No hosts have registered yet.</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reference assisted-service: hosts</title>"
        f"<style>{_STYLE}</style></head><body><h1>Hosts ({len(hosts)})</h1>{body}</body></html>"
    )
