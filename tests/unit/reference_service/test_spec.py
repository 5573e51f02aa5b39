"""The compiled validator (jsonschema-rs) only accepts: whatever it accepts, jsonschema accepts too, and what
jsonschema accepts it accepts (so the fast path is taken). Checked on recorded inventories, the swarm's replies
and thousands of seeded mutations of them (wrong types, bad uuids and addresses, missing fields, nulls)."""

from __future__ import annotations

import copy
import ipaddress
import json
import random
from typing import Any

import pytest

from reference_service import spec
from swarm import machine as swarm_machine
from tests.support.paths import FIXTURES

FIXTURES = FIXTURES
BAD_VALUES: list[Any] = [None, 5, -1, 1.5, "x", "nope", "999.1.1.1", "::zz", "", [], {}, True, "2026-13-45"]


def _documents() -> list[tuple[str, Any]]:
    docs: list[tuple[str, Any]] = [("inventory", json.loads(p.read_text())) for p in sorted(FIXTURES.glob("*.json"))]
    peers = [{"host_id": f"00000000-0000-4000-8000-{i:012d}",
              "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01", "ip_addresses": [f"10.128.0.{i + 1}"]}]}
             for i in range(5)]
    docs.append(("connectivity-report", swarm_machine.connectivity_report([json.dumps(peers)])))
    docs.append(("free_networks_addresses", swarm_machine.free_addresses([json.dumps(["10.128.0.0/24"])], 5)))
    docs.append(("step-reply", {"step_id": "inventory-1", "step_type": "inventory", "exit_code": 0,
                                "output": "{}", "error": ""}))
    return docs


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, (*prefix, i))
    return out


def _mutated(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    path = rng.choice(_paths(doc))
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(BAD_VALUES)
    return doc


def _slow_errors(definition: str, doc: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    with monkeypatch.context() as m:
        m.setattr(spec, "_fast", lambda *a: None)
        return spec.errors(definition, doc)


def test_the_fast_validator_agrees_with_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(12)
    checked = refused = 0
    for definition, doc in _documents():
        fast = spec._fast(definition)
        assert fast is not None, "jsonschema-rs is a dependency of the service"
        assert _slow_errors(definition, doc, monkeypatch) == []
        assert fast(doc)  # valid documents take the fast path
        for _ in range(300):
            bad = _mutated(doc, rng)
            slow = _slow_errors(definition, bad, monkeypatch)
            assert fast(bad) == (not slow), (definition, bad, slow)
            assert spec.errors(definition, bad) == slow  # a refusal is explained by jsonschema
            checked += 1
            refused += bool(slow)
    assert checked > 1000 and refused > 300  # the mutations do reach both outcomes


@pytest.mark.parametrize(("host_id", "valid"), [
    ("0b3f5d6e-8c55-4f61-9a43-5a7c0e2b9d10", True),
    ("0B3F5D6E-8C55-4F61-9A43-5A7C0E2B9D10", True),
    ("{0b3f5d6e-8c55-4f61-9a43-5a7c0e2b9d10}", True),  # uuid.UUID takes it: the fast path defers to it
    ("0b3f5d6e8c554f619a435a7c0e2b9d10", True),
    ("0b3f5d6e-8c55-4f61-9a43-5a7c0e2b9d1", False),
    ("0b3f5d6e-8c55-4f61-9a43-5a7c0e2b9d1g", False),
    ("host-1", False),
])
def test_uuid_formats_are_judged_as_the_checker_judges_them(host_id: str, valid: bool) -> None:
    report = {"remote_hosts": [{"host_id": host_id, "l2_connectivity": [], "l3_connectivity": []}]}
    assert (spec.errors("connectivity-report", report) == []) is valid


def _ipv4_valid(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def test_ipv4_formats_are_judged_as_the_checker_judges_them() -> None:
    """The dotted-quad fast path accepts exactly what ipaddress does, on fixed and random spellings."""
    rng = random.Random(4)
    fixed = ["10.0.0.1", "0.0.0.0", "255.255.255.255", "010.0.0.1", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.4 ",
             " 1.2.3.4", "1.2.3.4\n", "1..3.4", "\u0661.2.3.4", "1.2.3.-4", "+1.2.3.4", "00.1.2.3"]
    randoms = [".".join(rng.choice(["0", "00", "1", "9", "25", "99", "199", "249", "250", "255", "256", "300",
                                    "01", "1a", ""]) for _ in range(rng.choice([3, 4, 4, 4, 5])))
               for _ in range(400)]
    fast = spec._fast("free_networks_addresses")
    assert fast is not None
    for text in fixed + randoms:
        doc = [{"network": "10.0.0.0/24", "free_addresses": [text]}]
        assert (spec.errors("free_networks_addresses", doc) == []) is _ipv4_valid(text), text
        assert fast(doc) is _ipv4_valid(text), text
