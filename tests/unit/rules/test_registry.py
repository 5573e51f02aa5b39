"""The registry's tables are complete whenever they are read, though importing one area imports only it.

``agent check`` and ``agent inventory --format table`` import the disk and hardware rules alone (issue 29: all
areas cost them ~0.1 s of CPU); whatever reads a table gets every area's hooks, in the same order whichever
area a process happened to import first (validations are evaluated and shown in that order)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT

_TABLES = """
import json, sys
{first}
before = sorted(m for m in sys.modules if m.startswith("rules."))
from rules import registry
print(json.dumps({{"before": before, "validations": list(registry.VALIDATIONS),
                  "steps": sorted(registry.STEP_ARGUMENTS), "text_only": sorted(registry.TEXT_ONLY),
                  "handlers": sorted((k, v.__module__) for k, v in registry.REPLY_HANDLERS.items())}}))
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


def test_a_read_table_is_complete_and_in_area_order_whichever_area_came_first() -> None:
    reference = _tables("import rules; rules.load_areas()")
    assert reference["validations"][:1] == ["connected"]  # core's first, then hardware's...
    assert "has-inventory" in reference["validations"] and "belongs-to-majority-group" in reference["validations"]
    for first in ("import rules.hardware", "import rules.preinstall, rules.network", "import rules.disks",
                  "from rules import core"):
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


def test_derivers_are_every_areas_in_a_process_that_imported_only_documents() -> None:
    """A reply worker imports documents, not the areas: what it derives must still be what the service would
    (network_validations registers the connectivity report's derivers)."""
    code = ("from rules import documents\n"
            "print(sorted(documents.derive_all('connectivity', {'remote_hosts': []})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         cwd=ROOT)
    assert out.stdout.split("\n")[-2] == "['_flagged', '_l2_conflicts']"
