"""Packaging: the agent alone needs none of the service's dependencies and loads no step code in the daemon; the
wheel builds without warnings and ships the pages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

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
    data = {name for name in listed if not (root / name.replace(".", "/") / "__init__.py").exists()}
    assert listed - data == on_disk
    assert data == {"reference_service.pages.static", "reference_service.pages.templates"}  # listed so pip is quiet


def test_building_the_wheel_is_quiet_and_ships_the_pages(tmp_path: Path) -> None:
    """setuptools warned (93 lines) about every data directory it was not told of, before a user saw anything."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stdout + proc.stderr.replace("WARNING: Location", "")
    wheel = next(tmp_path.glob("assisted_agent-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "reference_service/pages/templates/host.html" in names
    assert "reference_service/pages/static/swagger-ui/swagger-ui-bundle.js" in names
    assert "swarm/machine.json" in names


#: Loaded only once there is a step to run, never on the daemon's way to its first register (issue 29: that
#: way is the CPU a host spends before the service hears of it). requests and urllib3 (about 0.1 s of CPU),
#: http.client (the email package) and ssl are loaded after it too: the first register and poll go out on a plain
#: socket (common.first_contact); uuid (platform), random and shutil are not needed on the way, nor dataclasses
#: (with inspect, ast, dis, tokenize: the settings are NamedTuples) nor the idna codec (an ASCII host name goes to
#: getaddrinfo as bytes), nor pathlib (the state directory is locked through os.path), nor logging (traceback,
#: linecache, tokenize, string: common.lazy_log loads it at the first record, after the register when all is well),
#: nor urllib.parse with ipaddress (a plain --url is read by common.first_contact.plain_url), nor typing (the
#: records are common.records', TYPE_CHECKING a constant).
NOT_BEFORE_REGISTER = ("logging", "traceback", "linecache", "tokenize", "common.logs", "urllib", "ipaddress",
                       "psutil", "steps", "agent.forks", "agent.fork_server", "agent.step_process", "agent.runner",
                       "agent.dispatch", "common.answers", "subprocess", "inventory", "pyudev", "scapy", "pyroute2",
                       "argcomplete", "shtab", "requests", "urllib3", "http", "email", "ssl", "uuid", "platform",
                       "random", "shutil", "common.http_session", "dataclasses", "inspect", "ast", "dis",
                       "encodings.idna", "stringprep", "unicodedata", "pathlib", "typing")

#: Everything the way to the first register may load, as whole top-level modules of the standard library and as
#: single modules of ours: a new import on the way fails the test below, whether it is in the deny-list above or
#: not, so each one is a decision (docs/go-differences.md: every millisecond of CPU there is many under load).
#: The interpreter's own start (site, encodings, the venv's setuptools hook) is listed too.
FIRST_REGISTER_STDLIB = frozenset({
    "__future__", "__main__", "_abc", "_codecs", "_collections", "_collections_abc", "_distutils_hack",
    "_frozen_importlib", "_frozen_importlib_external", "_functools", "_imp", "_io", "_json", "_operator", "_signal",
    "_sitebuiltins", "_socket", "_sre", "_stat", "_thread", "_warnings", "_weakref", "_weakrefset", "abc",
    "builtins", "codecs", "collections", "contextlib", "copyreg", "encodings", "enum", "fcntl", "functools",
    "genericpath", "io", "itertools", "json", "keyword", "marshal", "operator", "os", "posix", "posixpath", "re",
    "reprlib", "select", "signal", "site", "stat", "sys", "threading", "time", "types", "warnings", "zipimport"})
FIRST_REGISTER_OURS = frozenset({
    "agent", "agent.cli", "agent.config", "agent.daemon", "agent.identity", "agent.launcher", "agent.lifecycle",
    "agent.notify", "agent.parsers", "agent.registration", "agent.settings", "agent.state", "agent.step_env",
    "common", "common.dry_run", "common.errors", "common.first_contact", "common.go_bool", "common.host",
    "common.lazy_log", "common.limits", "common.records", "common.service_client", "common.settings_table",
    "common.usage", "common.uuids"})

_FIRST_REGISTER = """
import json, os, sys
import common.service_client as sc

def exchange(host, port, head, body, **kw):
    print(json.dumps({"modules": sorted(sys.modules), "head": head.decode(), "body": body.decode(),
                      "tls": kw.get("tls") is not None}))
    sys.stdout.flush()
    os._exit(0)

sc.exchange = exchange
from agent.cli import main
main(["--url", "http://127.0.0.1:9", "--infra-env-id", "11111111-1111-1111-1111-111111111111",
      "--agent-version", "v", "--host-id", "00000000-0000-0000-0000-0000000000aa"])
"""


def test_the_way_to_the_first_register_imports_no_step_machinery_no_requests_and_makes_no_tls_context(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(AGENT_STATE_DIR=str(tmp_path / "state"), AGENT_CONFIG="/nonexistent", PULL_SECRET_TOKEN="tok-123")
    out = subprocess.run([sys.executable, "-c", _FIRST_REGISTER], capture_output=True, text=True, check=True,
                         timeout=60, env=env)
    seen = json.loads(out.stdout.splitlines()[-1])
    early = [m for m in seen["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_BEFORE_REGISTER)]
    assert early == []
    ours = {m for m in seen["modules"] if m.split(".")[0] in ("agent", "common")}
    assert sorted(ours - FIRST_REGISTER_OURS) == []
    stdlib = {m.split(".")[0] for m in seen["modules"]} - {"agent", "common", "tests"}
    assert sorted(stdlib - FIRST_REGISTER_STDLIB) == []  # not socket (enums and selectors): common.first_contact
    assert seen["tls"] is False  # an http:// service needs none; an https:// one makes it at its request
    # the request is the one requests would send: the API path, the token, the agent version, a request id
    head = seen["head"]
    assert head.startswith("POST /api/assisted-install/v2/infra-envs/11111111-1111-1111-1111-111111111111/hosts "
                           "HTTP/1.1\r\n")
    for field in ("Host: 127.0.0.1:9", "X-Secret-Key: tok-123", "Discovery_agent_version: v",
                  "Content-Type: application/json", "Accept: application/json"):
        assert f"\r\n{field}\r\n" in head
    assert json.loads(seen["body"]) == {"host_id": "00000000-0000-0000-0000-0000000000aa",
                                        "discovery_agent_version": "v"}


def test_without_a_token_the_way_to_the_first_register_still_loads_no_logging(tmp_path: Path) -> None:
    """The warning of the empty token waits for the first record after the register (common.lazy_log)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "PULL_SECRET_TOKEN"}
    env.update(AGENT_STATE_DIR=str(tmp_path / "state"), AGENT_CONFIG="/nonexistent")
    out = subprocess.run([sys.executable, "-c", _FIRST_REGISTER], capture_output=True, text=True, check=True,
                         timeout=60, env=env)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert [m for m in seen["modules"] if m == "logging" or m.startswith("logging.")] == []
    assert "X-Secret-Key" not in seen["head"]


def test_the_records_made_at_start_have_evaluated_annotations() -> None:
    """typing makes a NamedTuple's fields from its annotations and compiles each one that is a string (what
    ``from __future__ import annotations`` makes of them), about 0.3 ms a field: the forty of AgentConfig were
    more CPU than the dataclass they replaced. Every NamedTuple the agent's start-up, ``agent inventory`` and
    ``agent check`` define must be declared in a module without that import (typing keeps the compiled
    ForwardRefs as the annotations), or be made by common.records (which reads no annotation: the daemon's way
    to its first register loads no typing at all)."""
    import typing

    import agent.check
    import agent.cli
    import agent.inventory_report
    import agent.launcher
    import common.answers
    import common.records

    assert agent.cli and agent.launcher and common.answers and agent.check and agent.inventory_report
    ours = [m for name, m in sorted(sys.modules.items()) if name.split(".")[0] in ("agent", "common", "inventory",
                                                                                 "rules")]
    records = [v for m in ours for v in vars(m).values()
               if isinstance(v, type) and issubclass(v, tuple) and hasattr(v, "_fields") and v.__module__ == m.__name__]
    assert {r.__name__ for r in records} >= {"AgentConfig", "Setting", "DrySettings", "Registration", "CommandResult",
                                             "Instruction", "Steps", "RunnerRequest", "Collector", "Requirements"}
    # common.records' NamedTuple never evaluates annotations: the start path's records are made by it
    by_records = {f"{r.__module__}.{r.__name__}" for r in records
                  if vars(sys.modules[r.__module__]).get("NamedTuple") is common.records.NamedTuple}
    assert by_records >= {"agent.config.AgentConfig", "common.settings_table.Setting", "common.dry_run.DrySettings",
                          "agent.registration.Registration", "common.host.CommandResult",
                          "common.answers.Instruction", "common.answers.Steps", "common.answers.RunnerRequest"}
    stringly = [f"{r.__module__}.{r.__name__}" for r in records
                if any(isinstance(a, str | typing.ForwardRef) for a in r.__annotations__.values())
                and f"{r.__module__}.{r.__name__}" not in by_records]
    assert stringly == []


def test_the_first_poll_answer_is_read_without_dataclasses_or_uuid() -> None:
    loaded = _modules_after("import agent.daemon, common.answers")
    assert [m for m in ("dataclasses", "inspect", "uuid", "platform") if m in loaded] == []


def test_the_fork_server_carries_only_the_step_framework() -> None:
    """Every step is a fork of it, and it stays resident between polls: what it imports, every step and the
    agent's memory between polls pay for (importlib.metadata 4 MiB, psutil 2.5 MiB, requests 10 MiB)."""
    loaded = _modules_after("import agent.fork_server\nagent.fork_server.warm()")
    assert "agent.step_process" in loaded and "steps.base" in loaded
    heavy = [m for m in loaded if m.split(".")[0] in ("psutil", "requests", "urllib3", "scapy", "pyroute2", "pyudev")
             or m == "importlib.metadata" or (m.startswith("steps.") and m not in ("steps.registry", "steps.base"))]
    assert heavy == []


#: Never on ``agent inventory``'s way (issue 28): its start-up is kept fast by a hand parser of its two flags and
#: imports moved into the functions that need them; one top-level import of any of these would undo that silently.
NOT_IN_INVENTORY = ("argparse", "gettext", "locale", "logging", "importlib.metadata", "subprocess", "requests",
                    "urllib3", "psutil", "pyudev", "scapy", "pyroute2", "shtab", "steps", "rules", "agent.settings",
                    "agent.config", "agent.runner", "agent.daemon", "common.settings_table")

_INVENTORY = """
import contextlib, io, json, sys
from agent.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["inventory", "--root", sys.argv[1]])
print(json.dumps({"code": code, "inventory": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def test_agent_inventory_imports_only_what_it_needs() -> None:
    root = ROOT / "tests" / "fixtures" / "hosts" / "baremetal-server"
    out = subprocess.run([sys.executable, "-c", _INVENTORY, str(root)], capture_output=True, text=True, check=True,
                         timeout=60)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["code"] == 0 and json.loads(seen["inventory"])["hostname"]
    loaded = [m for m in seen["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_IN_INVENTORY)]
    assert loaded == []


#: ``agent inventory --format table`` adds the service's disk reasons (rules.disk_reasons) and textwrap to the
#: JSON's way, nothing more: the rule areas, host views and cluster models cost ~0.05 s of CPU (issue 29).
NOT_IN_TABLE = (*(n for n in NOT_IN_INVENTORY if n != "rules"), "dataclasses", "rules.documents", "rules.registry",
                "rules.disks", "rules.cluster_model", "rules.hardware", "rules.core")


def test_agent_inventory_table_imports_only_what_it_needs() -> None:
    root = ROOT / "tests" / "fixtures" / "hosts" / "baremetal-server"
    out = subprocess.run([sys.executable, "-c", _INVENTORY.replace('"--root"', '"--format", "table", "--root"'),
                          str(root)], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["code"] == 0 and "Disks: the agent's eligibility plus the service's checks" in seen["inventory"]
    assert "rules.disk_reasons" in seen["modules"]
    loaded = [m for m in seen["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_IN_TABLE)]
    assert loaded == []


#: ``agent check`` runs the hardware rules: not the other areas (imported all at once they doubled its CPU), nor
#: anything of the daemon's or the service's, nor dataclasses (inspect, ast, dis, tokenize: a tenth of its CPU;
#: HostView, Validation, the cluster model's records and agent.check.Result are plain classes).
NOT_IN_CHECK = ("dataclasses", "inspect", "ast", "dis", "orjson",
                "rules.core", "rules.network", "rules.network_validations", "rules.install", "rules.preinstall",
                "rules.ip_collisions", "rules.states", "rules.cluster_validations", "requests", "urllib3",
                "psutil", "pyudev", "scapy", "pyroute2", "subprocess", "steps", "agent.settings", "agent.config",
                "agent.runner", "agent.daemon", "logging", "shutil", "textwrap")


def test_agent_check_imports_only_the_hardware_rules(tmp_path: Path) -> None:
    """As pip installs the agent: without orjson, the service extra's (which imports dataclasses itself)."""
    (tmp_path / "orjson.py").write_text("raise ImportError('orjson: the service extra, not the agent')\n")
    root = ROOT / "tests" / "fixtures" / "hosts" / "baremetal-server"
    out = subprocess.run([sys.executable, "-c", _INVENTORY.replace('main(["inventory"', 'main(["check"'),
                          str(root)], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["code"] == 0 and "Result: would pass" in seen["inventory"]
    assert "rules.hardware" in seen["modules"]
    loaded = [m for m in seen["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_IN_CHECK)]
    assert loaded == []


def test_the_daemon_finds_a_previous_lifes_leftovers_without_psutil(tmp_path: Path) -> None:
    """It stays resident for hours: psutil would be 1 MiB of it all the time for a look at /proc at start."""
    loaded = _modules_after(f"import agent.daemon, agent.state\nagent.state.reap_leftovers({str(tmp_path)!r})")
    assert "psutil" not in loaded


def test_the_fork_server_freezes_what_it_imported_before_it_forks() -> None:
    """A collection in a step would otherwise touch every object it inherited and copy the pages they are on."""
    code = "import gc, agent.fork_server as f\nf.warm()\nf.settle()\nprint(gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert int(out.stdout.split()[-1]) > 10_000
