"""The rules keep no state of their own: evaluating hosts, building steps and applying replies changes no
module-level container of any rules module, and no module of the rules, the service or the agent writes one at
all (the hooks are marked, and collected into a rulebook its owner builds: ``registry.Rulebook``). What must be
remembered between calls is the cluster model's (``rules/cluster_model.py``) or another owned object's."""

from __future__ import annotations

import ast
import copy
import importlib
import json
import pkgutil
from types import ModuleType
from typing import Any

import rules
from rules.documents import HostView
from rules.registry import Rulebook
from tests.support.paths import ROOT

RULES = Rulebook.of()  # every area's hooks, as the service's
REPLY_HANDLERS = RULES.reply_handlers
STEP_ARGUMENTS = RULES.step_arguments
VALIDATIONS = RULES.validations

CLUSTER = {"id": "c", "name": "c", "base_dns_domain": "example.com", "control_plane_count": 3,
           "machine_networks": [{"cidr": "10.0.0.0/24"}], "status": "insufficient"}


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"rules.{m.name}") for m in pkgutil.iter_modules(rules.__path__)]


def _containers() -> dict[str, Any]:
    """Every module-level dict, list, set or deque of the rules, by name: a copy of what it holds."""
    out = {}
    for module in _modules():
        for name, value in vars(module).items():
            if isinstance(value, (dict, list, set)) and not name.startswith("__"):
                out[f"{module.__name__}.{name}"] = copy.copy(value)
    return out


def _host(i: int) -> dict[str, Any]:
    ip = f"10.0.0.{10 + i}"
    return {"id": f"00000000-0000-0000-0000-{i:012d}", "infra_env_id": "ie", "cluster_id": "c", "status": "known",
            "role": "master", "_checked_in": 1.0, "timestamp": 1,
            "inventory": json.dumps({"hostname": f"h{i}", "cpu": {"count": 8}, "memory": {"physical_bytes": 1 << 35},
                                     "disks": [{"id": "d", "name": "sda", "size_bytes": 1 << 40}],
                                     "interfaces": [{"name": "eth0", "type": "physical", "mac_address": f"02::{i}",
                                                     "ipv4_addresses": [f"{ip}/24"], "ipv6_addresses": []}]})}


def test_evaluating_building_and_applying_change_no_module_state() -> None:
    before = _containers()
    hosts = [_host(i) for i in range(4)]
    for host in hosts:
        host["connectivity"] = json.dumps({"remote_hosts": [
            {"host_id": h["id"], "l2_connectivity": [{"remote_ip_address": f"10.0.0.{10 + i}", "successful": True}]}
            for i, h in enumerate(hosts) if h is not host]})
    for host in hosts:
        view = HostView(host=host, infra_env={"id": "ie"}, cluster=CLUSTER, hosts=hosts, now=100.0)
        for validation in VALIDATIONS.values():
            validation.func(view)
        for build in STEP_ARGUMENTS.values():
            build(view)
        REPLY_HANDLERS["ntp-synchronizer"](view, {"ntp_sources": []}, {"exit_code": 0})
    assert _containers() == before


#: Methods that change a dict, list, set or deque in place.
_MUTATORS = frozenset({"append", "appendleft", "add", "clear", "discard", "extend", "insert", "move_to_end", "pop",
                       "popitem", "popleft", "remove", "reverse", "setdefault", "sort", "update"})
#: Module-level memos of files that never change while a process runs (the bundled spec, its validators, the
#: page templates): the same answer for every caller, so no owner would hold anything of its own.
_FILE_MEMOS = {"reference_service/spec.py": {"load_spec", "_validators", "_fast"},
               "reference_service/reply_check.py": {"step_types"},
               "reference_service/http/docs.py": {"bundled_spec"},
               "reference_service/pages/render.py": {"environment"}}


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def module_state(source: str) -> list[str]:
    """Where a module writes state of its own: a module-level dict, list, set (or any object a call made) changed
    in place anywhere in it, ``global``, ``globals()``, and functions memoized by a ``cache`` decorator. An
    attribute set on such an object by a statement of the module's own body is a declaration made once at
    import (``console._STATIC.auth``), not state."""
    tree = ast.parse(source)
    held: set[str] = set()
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
            stmt, ast.AnnAssign) and stmt.value is not None else []
        value = getattr(stmt, "value", None)
        if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp, ast.Call)):
            held.update(t.id for t in targets if isinstance(t, ast.Name))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{node.lineno}: global {', '.join(node.names)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "globals":
            found.append(f"{node.lineno}: globals()")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            root = _root(node.func.value)
            if isinstance(root, ast.Name) and root.id in held:
                found.append(f"{node.lineno}: {root.id}.{node.func.attr}()")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                root = _root(target)
                declared = node in tree.body and isinstance(target, ast.Attribute) and target.value is root
                if isinstance(root, ast.Name) and root.id in held and not declared and (
                        target is not root or isinstance(node, ast.AugAssign)):
                    found.append(f"{node.lineno}: {root.id} written")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                ast.unparse(d).split("(")[0].rsplit(".")[-1] in ("cache", "lru_cache") for d in node.decorator_list):
            found.append(f"{node.lineno}: {node.name} memoized")  # (per process, not per owner)
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def test_the_scan_finds_what_the_registries_were() -> None:
    """The tables this replaced, as they were written (rules/registry.py and rules/documents.py before)."""
    old = (
        "import functools\n_VALIDATIONS = {}\n_TEXT_ONLY: set[str] = set()\n_DERIVERS = {}\n"
        "def validation(id):\n    def register(func):\n        _VALIDATIONS[id] = func\n        return func\n"
        "    return register\n"
        "def text_only(step):\n    _TEXT_ONLY.add(step)\n"
        "def deriver(name, derive):\n    _DERIVERS.setdefault(name, {})[derive.__qualname__] = derive\n"
        "def publish():\n    globals().update(VALIDATIONS=_VALIDATIONS)\n"
        "@functools.lru_cache(maxsize=1)\ndef table():\n    return {}\n"
    )
    assert {line.split(": ")[1] for line in module_state(old)} == {
        "_VALIDATIONS written", "_TEXT_ONLY.add()", "_DERIVERS.setdefault()", "_DERIVERS written", "globals()",
        "table memoized"}
    assert module_state("LIMITS = {'a': 1}\ndef read():\n    return dict(LIMITS)\n") == []


def test_no_module_of_the_rules_the_service_or_the_agent_writes_state_of_its_own() -> None:
    """``common/lazy_log.LOGGING`` is one per process on purpose (the agent's start path) and is not scanned."""
    found = {}
    for package in ("rules", "reference_service", "agent"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            allowed = _FILE_MEMOS.get(name, set())
            state = [f for f in module_state(path.read_text(encoding="utf-8"))
                     if not (f.endswith(" memoized") and f.split()[1] in allowed)]
            if state:
                found[name] = state
    assert found == {}
