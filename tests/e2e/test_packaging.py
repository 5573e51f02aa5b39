"""The agent alone needs none of the reference service's dependencies, and loads no step code in the daemon."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.support.paths import ROOT

SERVICE_ONLY = ("starlette", "uvicorn", "yaml", "jsonschema")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_daemon_imports_no_service_dependency_and_no_step_code() -> None:
    loaded = _modules_after("import agent.cli, agent.daemon, agent.runner, steps.registry\n"
                            "steps.registry.available()")
    assert not [m for m in loaded if m.split(".")[0] in SERVICE_ONLY]
    step_modules = [m for m in loaded if m.startswith("steps.") and m not in ("steps.registry", "steps.base")]
    assert step_modules == []
    assert not [m for m in loaded if m.split(".")[0] in ("scapy", "pyroute2")]


def test_service_dependencies_are_an_optional_extra() -> None:
    from importlib.metadata import requires

    reqs = requires("assisted-agent") or []
    core = [r for r in reqs if "extra ==" not in r]
    service = [r for r in reqs if 'extra == "service"' in r]
    def name(req: str) -> str:
        return re.split(r"[<>=!~;\[ ,]", req, maxsplit=1)[0].strip().lower()

    assert not [r for r in core if name(r) in ("starlette", "uvicorn", "pyyaml", "jsonschema")]
    assert {name(r) for r in service} >= {"starlette", "uvicorn", "pyyaml", "jsonschema"}


def test_every_package_is_listed_in_pyproject() -> None:
    import tomllib

    root = ROOT
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tops = ("agent", "common", "inventory", "rules", "steps", "reference_service", "swarm")
    on_disk = {str(p.parent.relative_to(root)).replace("/", ".")
               for top in tops for p in (root / top).rglob("__init__.py")}
    assert listed == on_disk
