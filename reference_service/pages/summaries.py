"""What the pages show, as plain values: pure functions over the service's documents, no HTTP, no store.

Everything a host sent is untrusted: values are read with defaults and coerced, so a malformed inventory or
step output shows as missing data, never as a failed page. Escaping is the templates' (Jinja2 autoescape).
"""

from __future__ import annotations

import json
from typing import Any

from rules.documents import parse_json_field
from rules.user_checks import HOST_EDITABLE_STATES

#: The order the real UI lists validation results in: what needs a person's attention first.
STATUS_ORDER = {"failure": 0, "error": 1, "pending": 2, "success": 3, "disabled": 4}
#: Colour class of a host or cluster status, as the real UI colours them.
_STATUS_TONE = {
    "known": "ok", "known-unbound": "ok", "ready": "ok", "installed": "ok", "preparing-successful": "ok",
    "added-to-existing-cluster": "ok",
    "insufficient": "warn", "insufficient-unbound": "warn", "pending-for-input": "warn", "disconnected": "warn",
    "disconnected-unbound": "warn", "preparing-failed": "bad", "error": "bad", "cancelled": "bad",
    "installing": "busy", "installing-in-progress": "busy", "preparing-for-installation": "busy",
    "finalizing": "busy", "rebooting": "busy", "installing-pending-user-action": "warn",
}
#: Step types whose latest result has a summary of its own; others show their output as JSON.
SUMMARISED_STEPS = ("connectivity-check", "ntp-synchronizer", "domain-resolution", "installation-disk-speed-check",
                    "container-image-availability", "free-network-addresses", "inventory")


def tone(status: Any) -> str:
    return _STATUS_TONE.get(str(status or ""), "idle")


def gib(n: Any) -> str:
    return f"{_int(n) / (1 << 30):.1f} GiB"


def gb(n: Any) -> str:
    return f"{_int(n) / 1e9:.1f} GB"


def _int(n: Any) -> int:
    try:
        return int(n or 0)
    except (TypeError, ValueError):
        return 0


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def host_inventory(host: dict[str, Any]) -> dict[str, Any]:
    return _dict(parse_json_field(host, "inventory"))


def host_name(host: dict[str, Any]) -> str:
    return str(host.get("requested_hostname") or host_inventory(host).get("hostname") or host.get("id", ""))


def validation_groups(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Validations by category, failures first inside each, and the categories with failures first."""
    groups: list[dict[str, Any]] = []
    for category, results in _dict(parse_json_field(doc, "validations_info")).items():
        items = sorted((_dict(r) for r in _list(results)),
                       key=lambda r: (STATUS_ORDER.get(str(r.get("status")), 5), str(r.get("id"))))
        failing = sum(1 for r in items if r.get("status") in ("failure", "error"))
        groups.append({"category": str(category), "items": items, "failing": failing,
                       "pending": sum(1 for r in items if r.get("status") == "pending")})
    groups.sort(key=lambda g: (-g["failing"], g["category"]))
    return groups


#: Host states of a finished install.
INSTALLED = ("installed", "added-to-existing-cluster")


def host_row(host: dict[str, Any]) -> dict[str, Any]:
    """A line of a hosts table, with what its form offers: the roles, the disks a host can install to."""
    inv = host_inventory(host)
    disks = [_dict(d) for d in _list(inv.get("disks"))]
    chosen = next((d for d in disks if d.get("id") == host.get("installation_disk_id")), None)
    progress = _dict(host.get("progress"))
    installed = host.get("status") in INSTALLED
    name = str(host.get("requested_hostname") or inv.get("hostname") or host.get("id", ""))
    options = [{"id": str(d.get("id")), "label": f"{d.get('name', '')} {gb(d.get('size_bytes'))}",
                "chosen": d is chosen} for d in disks
               if d.get("id") and (_dict(d.get("installation_eligibility")).get("eligible") or d is chosen)]
    return {
        "id": host.get("id", ""), "infra_env_id": host.get("infra_env_id", ""), "name": name,
        "role": host.get("role") or "auto-assign", "suggested_role": host.get("suggested_role") or "",
        "status": host.get("status", ""), "tone": tone(host.get("status")), "status_info": host.get("status_info", ""),
        "cpu": _int(_dict(inv.get("cpu")).get("count")), "memory": gib(_dict(inv.get("memory")).get("physical_bytes")),
        "disk": f"{_dict(chosen).get('name', '')} {gb(_dict(chosen).get('size_bytes'))}" if chosen else "-",
        "disks_total": gb(sum(_int(d.get("size_bytes")) for d in disks)) if disks else "-",
        # an installed host is done, whichever stage it last reported (a dry run stops at Rebooting)
        "percentage": 100 if installed else _int(progress.get("installation_percentage")),
        "stage": "Done" if installed else progress.get("current_stage") or "",
        "editable": host.get("status") in HOST_EDITABLE_STATES and bool(inv), "disks": options,
        "hostname": name if name != host.get("id") else "",
    }


def inventory_view(host: dict[str, Any]) -> dict[str, Any] | None:
    inv = host_inventory(host)
    if not inv:
        return None
    chosen = host.get("installation_disk_id")
    disks = []
    for d in map(_dict, _list(inv.get("disks"))):
        elig = _dict(d.get("installation_eligibility"))
        disks.append({
            "name": d.get("name", ""), "type": d.get("drive_type", ""), "size": gb(d.get("size_bytes")),
            "id": d.get("id") or d.get("by_path") or d.get("path") or "", "model": d.get("model", ""),
            "eligible": bool(elig.get("eligible")),
            "reasons": [str(r) for r in _list(elig.get("not_eligible_reasons"))],
            "chosen": bool(chosen) and d.get("id") == chosen, "bootable": bool(d.get("bootable")),
            "removable": bool(d.get("removable")),
        })
    nics = []
    for n in map(_dict, _list(inv.get("interfaces"))):
        speed = _int(n.get("speed_mbps"))
        nics.append({
            "name": n.get("name", ""), "type": n.get("type", ""), "mac": n.get("mac_address", ""),
            "mtu": n.get("mtu", ""), "speed": f"{speed} Mb/s" if speed > 0 else "-",
            "carrier": bool(n.get("has_carrier")),
            "addresses": [str(a) for a in [*_list(n.get("ipv4_addresses")), *_list(n.get("ipv6_addresses"))]],
        })
    routes = [{"destination": r.get("destination", ""), "gateway": r.get("gateway", ""),
               "interface": r.get("interface", ""), "family": "IPv6" if r.get("family") == 10 else "IPv4",
               "metric": r.get("metric", "")} for r in map(_dict, _list(inv.get("routes")))]
    gpus = [{"address": g.get("address", ""), "vendor": g.get("vendor", ""), "name": g.get("name", "")}
            for g in map(_dict, _list(inv.get("gpus")))]
    cpu, mem, sv, boot = (_dict(inv.get(k)) for k in ("cpu", "memory", "system_vendor", "boot"))
    return {
        "system": f"{sv.get('manufacturer', '?')} {sv.get('product_name', '')}".strip(),
        "serial": sv.get("serial_number", ""), "virtual": bool(sv.get("virtual")),
        "cpu": f"{_int(cpu.get('count'))} x {cpu.get('model_name') or '?'}", "arch": cpu.get("architecture", ""),
        "memory": f"{gib(mem.get('physical_bytes'))} ({mem.get('physical_bytes_method', '?')})",
        "usable": gib(mem.get("usable_bytes")),
        "boot": f"{boot.get('current_boot_mode', '?')}, secure boot {boot.get('secure_boot_state', '?')}",
        "bmc": " / ".join(str(a) for a in (inv.get("bmc_address"), inv.get("bmc_v6address")) if a) or "none",
        "tpm": inv.get("tpm_version", ""), "hostname": inv.get("hostname", ""),
        "disks": disks, "nics": nics, "routes": routes, "gpus": gpus,
    }


def _output(reply: dict[str, Any]) -> Any:
    raw = reply.get("output")
    if not raw or not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def step_summary(step_type: str, output: Any, names: dict[str, str]) -> dict[str, Any]:
    """A table for the step's latest result: header and rows of strings. ``names`` maps host ids to names."""
    out = _dict(output)
    if step_type == "connectivity-check":
        rows = []
        for remote in map(_dict, _list(out.get("remote_hosts"))):
            who = names.get(str(remote.get("host_id")), str(remote.get("host_id", "")))
            for l3 in map(_dict, _list(remote.get("l3_connectivity"))):
                rows.append([who, "L3", str(l3.get("remote_ip_address", "")), "yes" if l3.get("successful") else "no",
                             f"{float(l3.get('average_rtt_ms') or 0):.2f} ms, "
                             f"{float(l3.get('packet_loss_percentage') or 0):.0f}% loss"])
            for l2 in map(_dict, _list(remote.get("l2_connectivity"))):
                rows.append([who, "L2", f"{l2.get('remote_ip_address', '')} ({l2.get('remote_mac', '')})",
                             "yes" if l2.get("successful") else "no", f"via {l2.get('outgoing_nic', '')}"])
        return {"header": ["remote host", "layer", "address", "reached", "detail"], "rows": rows}
    if step_type == "ntp-synchronizer":
        return {"header": ["source", "state"],
                "rows": [[str(s.get("source_name", "")), str(s.get("source_state", ""))]
                         for s in map(_dict, _list(out.get("ntp_sources")))]}
    if step_type == "domain-resolution":
        return {"header": ["name", "addresses"],
                "rows": [[str(r.get("domain_name", "")),
                          " ".join(map(str, [*_list(r.get("ipv4_addresses")), *_list(r.get("ipv6_addresses"))]))
                          or "not resolved"] for r in map(_dict, _list(out.get("resolutions")))]}
    if step_type == "installation-disk-speed-check":
        return {"header": ["disk", "fsync duration"],
                "rows": [[str(out.get("path", "")), f"{_int(out.get('io_sync_duration'))} ms"]]}
    if step_type == "container-image-availability":
        return {"header": ["image", "result", "size", "time", "rate"],
                "rows": [[str(i.get("name", "")), str(i.get("result", "")), gb(i.get("size_bytes")),
                          f"{float(i.get('time') or 0):.1f} s", f"{float(i.get('download_rate') or 0):.1f} MB/s"]
                         for i in map(_dict, _list(out.get("images")))]}
    if step_type == "free-network-addresses":
        return {"header": ["network", "free addresses"],
                "rows": [[str(n.get("network", "")), str(len(_list(n.get("free_addresses"))))]
                         for n in map(_dict, _list(output))]}
    if step_type == "inventory":
        return {"header": ["hostname", "disks", "NICs"],
                "rows": [[str(out.get("hostname", "")), str(len(_list(out.get("disks")))),
                          str(len(_list(out.get("interfaces"))))]]}
    return {"header": [], "rows": []}


def latest_steps(replies: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """The newest reply of every step type, with a summary table (or the raw output, pretty-printed)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in replies:
        latest[str(r.get("step_type", ""))] = r
    shown = []
    for step_type in sorted(latest):
        r = latest[step_type]
        output = _output(r)
        summary = step_summary(step_type, output, names) if _int(r.get("exit_code")) == 0 else {"rows": []}
        raw = json.dumps(output, indent=1)[:20000] if output is not None else str(r.get("output") or "")[:20000]
        shown.append({"step_type": step_type, "exit_code": _int(r.get("exit_code")), "error": r.get("error") or "",
                      "at": r.get("received_at_iso", ""), "summary": summary, "raw": raw})
    return shown


def progress_view(host: dict[str, Any]) -> dict[str, Any] | None:
    progress = _dict(host.get("progress"))
    stages = [str(s) for s in _list(host.get("progress_stages"))]
    current = str(progress.get("current_stage") or "")
    if not current and not stages:
        return None
    if current and current not in stages:
        stages.append(current)
    index = stages.index(current) if current in stages else -1
    percentage = _int(progress.get("installation_percentage"))
    if host.get("status") in INSTALLED:  # whichever stage it last reported (a dry run stops at Rebooting)
        index, percentage, current = len(stages), 100, "Done"
    return {
        "percentage": percentage, "current": current,
        "info": progress.get("progress_info") or "", "updated": progress.get("stage_updated_at") or "",
        "stages": [{"name": s, "state": "done" if i < index else "current" if i == index else "todo"}
                   for i, s in enumerate(stages)],
    }
