"""pyproject.toml's runtime dependencies are what the agent imports, and docs/dependencies.md covers each."""

from __future__ import annotations

import ast
import re
import sys
import tomllib

from tests.support.paths import ROOT

#: distribution name -> the module it installs, where they differ
MODULE_OF = {"systemd-python": "systemd", "pyyaml": "yaml"}


def _declared(deps: list[str]) -> set[str]:
    names = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in deps}
    return {MODULE_OF.get(n, n.replace("-", "_")) for n in names}


#: Modules of the shared ground that only the service and the swarm import (they install the service extra).
SERVICE_ONLY = {"common/json_codec.py", "common/gc_policy.py"}
OURS = ("agent", "common", "inventory", "rules", "steps", "reference_service", "swarm")


def _imported(*packages: str) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if str(path.relative_to(ROOT)) in SERVICE_ONLY:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in OURS}


def test_runtime_dependencies_are_exactly_the_agents_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"])
    imported = _imported("agent", "steps", "common", "inventory", "rules")
    assert declared == imported, {"declared, never imported": declared - imported,
                                  "imported, not declared": imported - declared}


def test_every_dependency_has_an_upper_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [*project["dependencies"], *project["optional-dependencies"]["service"]]
    assert [d for d in runtime if "<" not in d] == []


def test_the_document_names_every_card_package_and_protocol() -> None:
    text = (ROOT / "docs" / "dependencies.md").read_text()
    for name in ("psutil", "pyudev", "requests", "netifaces", "scapy", "pyroute2", "systemd-python",
                 "netlink", "DHCP", "DNS", "ARP", "ICMP", "sd_notify"):
        assert f"**{name}**" in text or f"| {name}" in text, name
