"""A big cluster's monitor pass makes due only the hosts whose verdicts what changed in the cluster's model can
have moved (``rules.due_hosts``), and the verdicts stay those of a fresh evaluation. Before, the model's
version moved whenever any host got its name or inventory, so in a 1,000-host discovery every host was
evaluated again after every 8 s pass (docs/scale.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_service.orchestrator import ReferenceService
from tests.support.big_cluster import big_cluster
from tests.support.spies import noted_calls

HOSTS = 8


@pytest.fixture
def big(tmp_path: Path) -> Iterator[tuple[ReferenceService, str, list[str]]]:
    with big_cluster(tmp_path, HOSTS) as made:
        yield made


def _inventory(i: int, name: str | None = None) -> str:
    return json.dumps({"hostname": name or f"node-{i}", "cpu": {"count": 8}, "memory": {"physical_bytes": 32 << 30},
                       "disks": [{"name": "vda", "size_bytes": 200 << 30}], "interfaces": [
        {"name": "eth0", "type": "physical", "mac_address": f"02:00:00:00:02:{i:02x}",
         "ipv4_addresses": [f"10.0.0.{10 + i}/24"], "ipv6_addresses": []}]})


def _report(me: int, ids: list[str], reached: set[int], slow: frozenset[int] | set[int] = frozenset()) -> str:
    """Host ``me`` reaches ``reached`` (L2), and the hosts of ``slow`` answer it in 500 ms (L3)."""
    return json.dumps({"remote_hosts": [
        {"host_id": ids[i], "l2_connectivity": [
            {"outgoing_nic": "eth0", "remote_ip_address": f"10.0.0.{10 + i}",
             "remote_mac": f"02:00:00:00:02:{i:02x}", **({"successful": True} if i in reached else {})}],
         "l3_connectivity": [
            {"outgoing_nic": "eth0", "remote_ip_address": f"10.0.0.{10 + i}", "successful": True,
             "average_rtt_ms": 500.0 if i in slow else 1.0, "packet_loss_percentage": 0.0}]}
        for i in range(len(ids)) if i != me]})


def _reply(svc: ReferenceService, ie: str, host_id: str, step_type: str, output: str) -> None:
    svc.post_reply(ie, host_id, {"step_id": f"{step_type}-{output.__hash__()}", "step_type": step_type,
                                 "output": output})


def _evaluations(svc: ReferenceService, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return noted_calls(monkeypatch, svc.settler, "validations", lambda view: str(view.host["id"]))


def _pass(svc: ReferenceService, ie: str, ids: list[str], seen: list[str]) -> list[str]:
    """The replies settled, the monitor's pass, every host polls once and the settler evaluates what is due:
    the hosts evaluated after the pass."""
    while svc.settler.settle(older_than=0):
        pass
    asyncio.run(svc.settler.tick())
    seen.clear()
    for host_id in ids:
        svc.next_steps(ie, host_id, None, None)
    while svc.settler.settle(older_than=0):
        pass
    return sorted(seen)


def _verdicts_are_fresh(svc: ReferenceService, ie: str, ids: list[str]) -> None:
    """Each host's stored validations are what evaluating it now gives."""
    for host_id in ids:
        host = svc.store.get_host(ie, host_id)
        assert host is not None
        fresh = svc.settler.validations(svc.view(host, reading=True))
        assert json.loads(host["validations_info"]) == fresh, host_id


def _status(svc: ReferenceService, ie: str, host_id: str, validation: str) -> str:
    host = svc.store.peek_host(ie, host_id) or {}
    results = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
    return str(results[validation]["status"])


def test_a_pass_makes_due_only_the_hosts_a_change_concerns(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ie, ids = big
    seen = _evaluations(svc, monkeypatch)
    for i, host_id in enumerate(ids[:-1]):
        _reply(svc, ie, host_id, "inventory", _inventory(i))
    _pass(svc, ie, ids, seen)  # (the first pass of the cluster: every host is due)
    assert _pass(svc, ie, ids, seen) == []
    _reply(svc, ie, ids[-1], "inventory", _inventory(HOSTS - 1))  # a host gets its name: nobody else cares
    assert _pass(svc, ie, ids, seen) == []  # the former code: all 8
    _reply(svc, ie, ids[3], "inventory", _inventory(3, "node-0"))  # a collision: the other host of the name
    assert _pass(svc, ie, ids, seen) == [ids[0]]
    assert _status(svc, ie, ids[0], "hostname-unique") == "failure"
    _reply(svc, ie, ids[3], "inventory", _inventory(3))
    assert _pass(svc, ie, ids, seen) == [ids[0]]
    assert _status(svc, ie, ids[0], "hostname-unique") == "success"
    _verdicts_are_fresh(svc, ie, ids)


def test_the_verdicts_of_hosts_judged_only_when_due_are_those_of_a_fresh_evaluation(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ie, ids = big
    seen = _evaluations(svc, monkeypatch)
    everyone = set(range(HOSTS))
    for i, host_id in enumerate(ids):
        _reply(svc, ie, host_id, "inventory", _inventory(i))
    _pass(svc, ie, ids, seen)
    for i, host_id in enumerate(ids):  # a full mesh; host 1 finds hosts 5 and 6 slow
        _reply(svc, ie, host_id, "connectivity-check", _report(i, ids, everyone, {5, 6} if i == 1 else set()))
    _pass(svc, ie, ids, seen)
    _verdicts_are_fresh(svc, ie, ids)
    assert _status(svc, ie, ids[0], "belongs-to-majority-group") == "success"
    for i in (1, 5):  # host 5 takes host 1's role: 500 ms between masters is too slow
        host = svc.store.get_host(ie, ids[i])
        assert host is not None
        host["role"] = "master"
        svc.refresh_host(host)  # (a user's change: evaluated at once)
    assert _pass(svc, ie, ids, seen) == [ids[1]]  # host 1 read host 5's role; nobody else did
    assert _status(svc, ie, ids[1], "sufficient-network-latency-requirement-for-role") == "failure"
    _verdicts_are_fresh(svc, ie, ids)
    half = {0, 1, 2, 3}
    for i, host_id in enumerate(ids):  # two cliques: the one of the first host in id order is the majority
        _reply(svc, ie, host_id, "connectivity-check", _report(i, ids, half if i in half else everyone - half))
    _pass(svc, ie, ids, seen)
    _verdicts_are_fresh(svc, ie, ids)
    majority = half if min(ids) in {ids[i] for i in half} else everyone - half
    assert [_status(svc, ie, h, "belongs-to-majority-group") for h in ids] == \
        ["success" if i in majority else "failure" for i in range(HOSTS)]
    _reply(svc, ie, ids[5], "inventory", _inventory(5, "node-2"))
    svc.store.delete_host(ie, ids[7])
    _pass(svc, ie, ids[:7], seen)
    _verdicts_are_fresh(svc, ie, ids[:7])
    assert _status(svc, ie, ids[2], "hostname-unique") == "failure"
