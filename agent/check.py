"""``agent check``: would this host pass the service's hardware validations? No service, no network.

    agent check [--role master|worker|auto] [--profile sno|compact|ha] [--format table|json] [--root DIR]
                [--openshift-version X.Y]

The host's inventory (or a recorded fixture tree's, with ``--root``) goes through the reference service's own
hardware rules: the reply handler that stores an inventory (virtual NICs dropped, every disk's eligibility
completed with the service's reasons, an installation disk chosen) and then every hardware validation, with
the real thresholds and messages, for a host of ``--role`` in a cluster of ``--profile``. Exit status 0 when
no blocking validation fails, 1 when one does, 2 on a bad command line.

Only the rules are imported from the service (pure functions over documents): no HTTP, no store.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError
from common.host import Host
from inventory.collect import inventory

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from rules.registry import Validation

DEFAULT_OPENSHIFT = "4.18"
PROFILES = ("sno", "compact", "ha")
#: Validations that judge a step's result rather than the inventory (sufficient-installation-disk-speed,
#: media-connected...) live in other rule modules and are not run: nothing has run those steps yet.
_STATUS_ORDER = {"failure": 0, "error": 1, "pending": 2, "success": 3, "disabled": 4}


class Result:
    """One validation's verdict as the service would show it. A plain class: dataclasses, with inspect, ast and
    dis, was a tenth of ``agent check``'s CPU (issue 29)."""

    __slots__ = ("blocking", "category", "id", "message", "status")

    def __init__(self, id: str, category: str, status: str, message: str, blocking: bool) -> None:
        self.id, self.category, self.status, self.message, self.blocking = id, category, status, message, blocking

    def doc(self) -> dict[str, Any]:
        """As ``--format json`` shows it."""
        return {"id": self.id, "category": self.category, "status": self.status, "message": self.message,
                "blocking": self.blocking}


def cluster_for(profile: str, openshift_version: str) -> dict[str, Any]:
    """The cluster document a host of this profile would be bound to, as the API spells it."""
    single = profile == "sno"
    return {
        "id": "00000000-0000-0000-0000-000000000000", "openshift_version": openshift_version,
        "control_plane_count": 1 if single else 3, "high_availability_mode": "None" if single else "Full",
        "cpu_architecture": "x86_64",
    }


def _rules() -> tuple[Any, Mapping[str, Validation]]:
    from rules import disks
    from rules.registry import Rulebook

    return disks, Rulebook.of("hardware").validations  # not the other areas: ~0.1 s of CPU (issue 29)


def evaluate(inv: dict[str, Any], role: str, cluster: dict[str, Any]) -> tuple[dict[str, Any], list[Result]]:
    """The host document the service would store for this inventory, and its hardware validations."""
    from rules.documents import HostView

    disks, validations = _rules()
    host: dict[str, Any] = {"id": "local", "role": role, "status": "discovering", "suggested_role": role}
    view = HostView(host=host, infra_env={}, cluster=cluster, hosts=[host])
    disks.store_inventory(view, json.loads(json.dumps(inv)), {})
    results = []
    for v in validations.values():
        outcome = v.func(view)
        if outcome is not None:
            results.append(Result(v.id, v.category, outcome[0], outcome[1], v.blocking))
    results.sort(key=lambda r: (_STATUS_ORDER.get(r.status, 5), r.id))
    return host, results


def passes(results: list[Result]) -> bool:
    return not any(r.blocking and r.status in ("failure", "error") for r in results)


def resolve(inv: dict[str, Any], role: str, profile: str, version: str) -> tuple[str, dict[str, Any], list[Result]]:
    """``auto`` is what the service would suggest: master where masters are all there is (sno, compact), else
    master if the host qualifies as one, worker otherwise."""
    cluster = cluster_for(profile, version)
    if role == "worker" and profile != "ha":
        raise ConfigError(f"a {profile} cluster has no workers", hint="use --profile ha for a worker")
    if role == "auto":
        host, results = evaluate(inv, "master", cluster)
        if profile != "ha" or passes(results):
            return "master", host, results
        role = "worker"
    host, results = evaluate(inv, role, cluster)
    return role, host, results


def report(inv: dict[str, Any], role: str, profile: str, version: str, problems: list[str]) -> dict[str, Any]:
    role, host, results = resolve(inv, role, profile, version)
    stored = json.loads(host.get("inventory") or "{}")
    return {
        "hostname": inv.get("hostname", ""), "role": role, "profile": profile, "openshift_version": version,
        "passed": passes(results),
        "validations": [r.doc() for r in results],
        "installation_disk_id": host.get("installation_disk_id", ""),
        "installation_disk_path": host.get("installation_disk_path", ""),
        "disks": [
            {"name": d.get("name", ""), "id": d.get("id", ""), "drive_type": d.get("drive_type", ""),
             "size_bytes": d.get("size_bytes", 0), **(d.get("installation_eligibility") or {})}
            for d in stored.get("disks") or []
        ],
        "not_collected": problems,
    }


def _rows(header: list[str], rows: list[list[str]], width: int | None = None) -> list[str]:
    """Columns; with a ``width`` (a terminal's), the last column is wrapped under itself so that no row runs
    past it and the terminal does not fold it back to column 0. textwrap only then: a pipe's rows are whole."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    start = 2 + sum(w + 2 for w in widths[:-1])
    room = (width - 1 - start) if width else 0
    out = []
    for r in [header, *rows]:
        head = "  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)) + "  "
        if not width or len(r[-1]) <= room:
            out.append((head + r[-1]).rstrip())
        elif room >= 20:  # wrapped under its own column
            import textwrap

            parts = textwrap.wrap(r[-1], room, break_on_hyphens=False)
            out.append((head + parts[0]).rstrip())
            out += [" " * start + part for part in parts[1:]]
        else:  # too little room left of it: the text goes on lines of its own, indented under the row
            import textwrap

            out.append(head.rstrip())
            out += textwrap.wrap(r[-1], width - 1, initial_indent=" " * 6, subsequent_indent=" " * 6,
                                 break_on_hyphens=False)
    return out


def table(doc: dict[str, Any], width: int | None = None) -> str:
    """The report for a person; ``width`` is the terminal's (None in a pipe: rows are never cut or wrapped)."""
    from agent.inventory_report import iec

    lines = [f"Host {doc['hostname'] or '?'} as {doc['role']} of a {doc['profile']} cluster "
             f"(OpenShift {doc['openshift_version']})", "", "Validations"]
    lines += _rows(["STATUS", "VALIDATION", "MESSAGE"],
                   [[v["status"] + ("" if v["blocking"] else " (warning only)"), v["id"], v["message"]]
                    for v in doc["validations"]], width)
    lines += ["", "Disks"]
    disk_rows = [[d["name"] + (" *" if d["id"] and d["id"] == doc["installation_disk_id"] else ""),
                  str(d["drive_type"]), iec(int(d["size_bytes"] or 0)),  # as agent inventory shows it
                  "yes" if d.get("eligible") else "NO", "; ".join(d.get("not_eligible_reasons") or [])]
                 for d in doc["disks"]]
    lines += _rows(["NAME", "TYPE", "SIZE", "ELIGIBLE", "REASONS"], disk_rows, width) if disk_rows else ["  (none)"]
    if doc["installation_disk_path"]:
        lines.append(f"  * installation disk {doc['installation_disk_path']}")
    if doc["not_collected"]:
        lines += ["", "Not collected:"] + [f"  {p}" for p in doc["not_collected"]]
    failed = [v["id"] for v in doc["validations"] if v["blocking"] and v["status"] in ("failure", "error")]
    lines += ["", "Result: would pass" if doc["passed"] else f"Result: would NOT pass ({', '.join(failed)})"]
    return "\n".join(lines)


def _terminal_width() -> int | None:
    """The terminal's columns; None in a pipe (shutil only then: it costs bz2 and lzma to import)."""
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


ROLES = ("master", "worker", "auto")


def parser() -> argparse.ArgumentParser:
    """The reference for the command line (``--help``, its errors); plain flags are read without it."""
    from common.argparser import Parser

    p = Parser(prog="agent check", description="Run this host's inventory through the service's hardware "
                "validations; exit 0 when it would pass.")
    p.add_argument("--role", choices=ROLES, default="auto")
    p.add_argument("--profile", choices=PROFILES, default="ha",
                   help="sno: one node; compact: three masters; ha: three masters and workers (default)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--root", default="/", help="root of the host's filesystem or a recorded fixture tree")
    p.add_argument("--openshift-version", default=DEFAULT_OPENSHIFT,
                   help=f"thresholds and drive types depend on it (default {DEFAULT_OPENSHIFT})")
    return p


def main(argv: list[str]) -> int:
    from agent.parsers import plain_flags  # agent.cli's: already imported

    defaults = {"--role": "auto", "--profile": "ha", "--format": "table", "--root": "/",
                "--openshift-version": DEFAULT_OPENSHIFT}
    flags = plain_flags(argv, defaults, {"--role": ROLES, "--profile": PROFILES, "--format": ("table", "json")})
    if flags is None:  # --help, abbreviations, mistakes: argparse's answers and messages
        ns = parser().parse_args(argv)
        flags = {"--role": ns.role, "--profile": ns.profile, "--format": ns.format, "--root": ns.root,
                 "--openshift-version": ns.openshift_version}
    inv, problems = inventory(Host.at(flags["--root"]))
    doc = report(inv, flags["--role"], flags["--profile"], flags["--openshift-version"], problems)
    if flags["--format"] == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(table(doc, _terminal_width()) + "\n")
    return 0 if doc["passed"] else 1
