"""The packages import in one direction only, so each can be read, tested and shipped without the ones above it.

common is the ground both programs stand on; inventory and rules are libraries over it; steps run inventory;
agent is the agent's top (daemon, CLIs, ``agent check`` over the rules); reference_service is the service's top,
and swarm its load generator. A lazy import inside a function counts the same as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

ALLOWED = {
    "common": set(),
    "inventory": {"common"},
    "rules": {"common"},
    "steps": {"common", "inventory"},
    "agent": {"common", "inventory", "rules", "steps"},
    "swarm": {"common"},
    "reference_service": {"common", "rules", "swarm"},
}


def _imports(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for package in ALLOWED:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in ALLOWED and top != package:
                        found.setdefault((package, top), []).append(str(path.relative_to(root)))
    return found


def test_packages_import_only_downwards() -> None:
    wrong = {f"{a} -> {b}": files for (a, b), files in _imports().items() if b not in ALLOWED[a]}
    assert wrong == {}


def test_the_allowed_graph_has_no_cycle() -> None:
    """The table itself is a DAG, so 'only what ALLOWED says' means 'no cycle between packages'."""
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, " -> ".join((*path, package))
        if package not in done:
            for below in ALLOWED[package]:
                visit(below, (*path, package))
            done.add(package)

    for package in ALLOWED:
        visit(package, ())


def test_a_lazy_upward_import_is_seen(tmp_path: Path) -> None:
    """The scan reads imports inside functions too: the kind of import that hid the old cycles."""
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "x.py").write_text("def f():\n    from agent.config import AgentConfig\n")
    assert _imports(tmp_path) == {("steps", "agent"): ["steps/x.py"]}
