"""The reference service's layers hold: its rules need none of the service's dependencies, the agent side
uses the rules only (never the HTTP surface, the store or the orchestrator that uses the store), and no
module of the service outgrows 400 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SERVICE = ROOT / "reference_service"
#: What only the service extra (or only the plumbing layers) may import.
SERVICE_ONLY = ("starlette", "uvicorn", "yaml", "jsonschema", "sqlite3")
PLUMBING = ("reference_service.http", "reference_service.store", "reference_service.orchestrator",
            "reference_service.cli", "reference_service.demo")

BLOCKER = """
import importlib.abc, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked: the rules must not need it")
        return None

for name in list(sys.modules):
    if name.split(".")[0] in {blocked!r}:
        del sys.modules[name]
sys.meta_path.insert(0, Blocked())
"""


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Every module a source file imports (absolute names; relative imports resolved against its package)."""
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_rules_and_the_agent_report_import_without_the_service_dependencies() -> None:
    code = BLOCKER.format(blocked=set(SERVICE_ONLY)) + (
        "import rules, agent.inventory_report\n"
        "from rules.disks import service_disk_reasons\n"
        "from rules.registry import Rulebook\n"
        "assert Rulebook.of().validations, 'every area is there'\n"
        "disk = {'name': 'sda', 'size_bytes': 10**9, 'drive_type': 'HDD'}\n"
        "print(service_disk_reasons(disk, {'cpu': {'architecture': 'x86_64'}, 'disks': [disk]}))\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(SERVICE_ONLY)!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    reasons, loaded = out.stdout.splitlines()[-2:]
    assert "Disk is too small (disk only has 1.0 GB, but 100 GB are required)" in reasons
    assert loaded == "[]"


def test_the_blocker_does_block() -> None:
    """The test above would pass vacuously if blocking did nothing: the HTTP layer must fail under it."""
    code = BLOCKER.format(blocked=set(SERVICE_ONLY)) + "import reference_service.http.app\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode != 0 and "is blocked" in out.stderr


@pytest.mark.parametrize("top", ["agent", "steps"])
def test_the_agent_side_never_imports_the_service_plumbing(top: str) -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if _under(m, PLUMBING))
                 for p in (ROOT / top).rglob("*.py")}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_rules_import_no_plumbing_and_no_service_dependency() -> None:
    offenders = {}
    for path in (SERVICE / "rules").rglob("*.py"):
        bad = sorted(m for m in _imports(path) if _under(m, PLUMBING) or m.split(".")[0] in SERVICE_ONLY)
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_import_scanner_sees_plumbing_imports() -> None:
    source = ("import reference_service.store.database\nfrom ..http import app\n\n"
              "def f():\n    from reference_service import orchestrator\n")
    found = _imports(SERVICE / "rules" / "probe.py", source)
    assert {"reference_service.store.database", "reference_service.http.app", "reference_service.orchestrator"} <= found
    assert all(_under(m, PLUMBING) for m in ("reference_service.store.database", "reference_service.http.app"))


def test_no_service_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in SERVICE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}
