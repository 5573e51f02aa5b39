"""The rules' hooks are collected by whoever needs them (``registry.Rulebook``), never into module tables.

``agent check`` and ``agent inventory --format table`` import the disk and hardware rules alone (issue 29: all
areas cost them ~0.1 s of CPU); a rulebook of every area has the same hooks in the same order whichever area a
process happened to import first (validations are evaluated and shown in that order), and two rulebooks share
nothing a caller could change."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from rules import AREA_MODULES, core, network, network_validations
from rules.documents import HostView
from rules.registry import Rulebook, Validation, hooks, reply_handler, validation
from tests.support.paths import ROOT

_TABLES = """
import json, sys
{first}
before = sorted(m for m in sys.modules if m.startswith("rules."))
from rules.registry import Rulebook
book = Rulebook.of()
print(json.dumps({{"before": before, "validations": list(book.validations),
                  "steps": sorted(book.step_arguments), "text_only": sorted(book.text_only),
                  "handlers": sorted((k, v.__module__) for k, v in book.reply_handlers.items()),
                  "derivers": sorted(q for q, _ in book.derivers["connectivity"])}}))
"""


def _tables(first: str) -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", _TABLES.format(first=first)], capture_output=True, text=True,
                         check=True, timeout=60, cwd=ROOT)
    result: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_one_area_imports_only_what_it_needs() -> None:
    seen = _tables("import rules.hardware")["before"]
    assert "rules.hardware" in seen
    assert not {"rules.core", "rules.network", "rules.network_validations", "rules.install", "rules.preinstall",
                "rules.ip_collisions"} & set(seen)


def test_a_rulebook_is_complete_and_in_area_order_whichever_area_came_first() -> None:
    reference = _tables("import rules; rules.load_areas()")
    assert reference["validations"][:1] == ["connected"]  # core's first, then hardware's...
    assert "has-inventory" in reference["validations"] and "belongs-to-majority-group" in reference["validations"]
    assert reference["text_only"] == ["connectivity-check"]
    assert reference["derivers"] == ["_flagged", "_l2_conflicts"]  # (a reply worker derives both)
    for first in ("import rules.hardware", "import rules.preinstall, rules.network", "import rules.disks",
                  "from rules import core", "from rules import documents"):
        got = _tables(first)
        assert {k: v for k, v in got.items() if k != "before"} == {
            k: v for k, v in reference.items() if k != "before"}, first


def test_the_disk_reasons_module_needs_no_host_view() -> None:
    code = ("import sys\nfrom rules.disk_reasons import service_disk_reasons\n"
            "disk = {'name': 'sda', 'size_bytes': 10**9, 'drive_type': 'HDD'}\n"
            "print(service_disk_reasons(disk, {'cpu': {'architecture': 'x86_64'}, 'disks': [disk]}))\n"
            "print(sorted(m for m in ('dataclasses', 'rules.documents', 'rules.cluster_model', 'rules.registry')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         cwd=ROOT)
    reasons, heavy = out.stdout.splitlines()[-2:]
    assert "Disk is too small (disk only has 1.0 GB, but 100 GB are required)" in reasons
    assert heavy == "[]"


def test_a_rulebook_has_the_areas_it_is_given_and_no_others() -> None:
    hardware = Rulebook.of("hardware")
    assert hardware.areas == ("rules.hardware",)
    assert "has-inventory" in hardware.validations and "connected" not in hardware.validations
    assert {v.func.__module__ for v in hardware.validations.values()} == {"rules.hardware"}
    assert not hardware.step_arguments and not hardware.reply_handlers  # (disks' handler is the disks area's)
    everything = Rulebook.of()
    assert everything.areas == tuple(f"rules.{name}" for name in AREA_MODULES)
    assert [v for v in everything.validations if v in hardware.validations] == list(hardware.validations)


def test_two_rulebooks_share_nothing_a_caller_can_change() -> None:
    """The tables were one module's, filled on import: anything that changed them (a test's monkeypatch, an
    extension) changed every reader's. A rulebook's tables are read-only, and building another is unaffected
    by anything done to the first."""
    first, second = Rulebook.of(), Rulebook.of()
    with pytest.raises(TypeError):
        first.validations["extra"] = first.validations["connected"]  # type: ignore[index]
    with pytest.raises(TypeError):
        first.reply_handlers["inventory"] = core.store_reply  # type: ignore[index]
    with pytest.raises(AttributeError):
        first.validations = {}
    with pytest.raises(AttributeError):
        first.text_only.add("inventory")  # type: ignore[attr-defined]
    assert first.validations is not second.validations
    assert list(first.validations) == list(second.validations)
    assert Rulebook.of("core").reply_handlers["connectivity-check"] is core.store_reply  # no area's own here
    assert first.reply_handlers["connectivity-check"] is network.store_connectivity  # the area's own wins


def test_marking_a_function_fills_no_table() -> None:
    """A decorator only marks: a hook defined outside an area module reaches no rulebook (it did reach every
    reader of the old module tables, whoever defined it)."""

    @validation("made-up", "hardware")
    def made_up(view: HostView) -> tuple[str, str]:
        return "success", "ok"

    assert "made-up" not in Rulebook.of().validations
    assert hooks(sys.modules[__name__]) == []  # (bound to a local name, not the module's)
    assert isinstance(made_up.__dict__["_rule_hooks"][0][2], Validation)


def test_two_areas_claiming_one_step_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Which of two handlers won depended on import order; now it is a mistake a rulebook says."""
    import types

    area = types.ModuleType("rules.made_up")

    def handler(view: HostView, output: Any, reply: dict[str, Any]) -> None:
        """Another area's handler of a step the network area handles."""

    handler.__module__ = area.__name__
    area.handler = reply_handler("domain-resolution")(handler)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="domain-resolution"):
        Rulebook([network, area])
    assert "domain-resolution" in Rulebook([network_validations, network]).reply_handlers
