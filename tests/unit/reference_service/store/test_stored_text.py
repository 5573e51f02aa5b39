"""A host's big fields (its connectivity report: 330 KB at 1,000 hosts) are not kept in memory: the document
holds a handle to the reply the text came from, the rules read what they derived when the reply came in, and
the API shows the text read back from the reply."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_service import reply_workers
from reference_service.http.common import public
from reference_service.orchestrator import ReferenceService
from reference_service.reply_check import Derived
from reference_service.store import database as store_module
from reference_service.store import refs as store_refs
from reference_service.store.database import Store
from rules import network_validations, registry
from rules.documents import parse_json_field
from rules.stored_text import StoredText
from tests.support.big_cluster import big_cluster
from tests.support.spies import noted_calls

HOSTS = 40
REPEAT = 13


def _report(ids: list[str], me: str) -> str:
    """A connectivity report on every other host, padded to the size a 1,000-peer report has per peer."""
    return json.dumps({"remote_hosts": [
        {"host_id": peer,
         "l2_connectivity": [{"outgoing_nic": "eth0", "remote_ip_address": f"10.0.0.{i + 1}", "successful": True,
                              "remote_mac": "02:00:00:00:00:01", "outgoing_ip_address": "10.0.0.250"}] * 2,
         "l3_connectivity": [{"outgoing_nic": "eth0", "remote_ip_address": f"10.0.0.{i + 1}", "successful": True,
                              "average_rtt_ms": 0.1, "packet_loss_percentage": 0}] * 2}
        for i, peer in enumerate(ids) if peer != me] * REPEAT})


@pytest.fixture
def big(tmp_path: Path) -> Iterator[tuple[ReferenceService, str, list[str]]]:
    with big_cluster(tmp_path, HOSTS) as made:
        yield made


def _post_reports(svc: ReferenceService, ie: str, ids: list[str], cycle: int = 0) -> None:
    for host_id in ids:
        svc.post_reply(ie, host_id, {"step_id": f"connectivity-check-{cycle}", "step_type": "connectivity-check",
                                     "exit_code": 0, "output": _report(ids, host_id)})
    svc.store.flush()
    while svc.settler.settle(older_than=0):
        pass


def test_the_service_does_not_keep_the_reports_it_stored(big: tuple[ReferenceService, str, list[str]]) -> None:
    svc, ie, ids = big
    assert len(_report(ids, ids[0])) > 300_000
    _post_reports(svc, ie, ids)  # the spec's checkers and the rules' caches are made on first use
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _post_reports(svc, ie, ids, cycle=1)  # 40 reports, 12.5 MB of text
        _post_reports(svc, ie, ids, cycle=2)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000, f"{kept} bytes kept after 80 reports of 320 KB"
    handle = (svc.store.peek_host(ie, ids[5]) or {})["connectivity"]
    assert isinstance(handle, StoredText) and not handle.held
    shown = public(svc.store.get_host(ie, ids[5]) or {})["connectivity"]
    assert shown == _report(ids, ids[5])  # the API shows the text, read back from the reply


def test_the_rules_read_what_they_derived_not_the_text(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ie, ids = big
    _post_reports(svc, ie, ids)
    loads = noted_calls(monkeypatch, svc.store, "_text", lambda handle: handle.host_id)
    for handle in [(svc.store.peek_host(ie, h) or {})["connectivity"] for h in ids]:
        handle._load = svc.store._text  # the handles were made before the count
    for host_id in ids:
        host = svc.store.get_host(ie, host_id) or {}
        svc.refresh_host(host)
        svc.next_steps(ie, host_id, None, None)
    assert loads == []
    # a rule that reads the text itself still gets it
    assert len(parse_json_field(svc.store.peek_host(ie, ids[0]) or {}, "connectivity")["remote_hosts"]) == \
        REPEAT * (HOSTS - 1)
    assert loads == [ids[0]]


def test_handles_survive_a_restart_as_references_in_the_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    big, mid = "b" * 100_000, "m" * 10_000
    host: dict[str, Any] = {"id": "h1", "infra_env_id": "ie", "status": "known"}
    for n, (field, text) in enumerate((("connectivity", big), ("free_addresses", mid))):
        reply = {"step_id": f"s-{n}", "step_type": field, "exit_code": 0, "output": text}
        store.add_reply("ie", "h1", reply)
        host[field] = store.keep_text("h1", reply)
    host["domain_name_resolutions"] = "small"
    store.save_host(host)
    store.flush()
    store.save_host(store.get_host("ie", "h1") or {})  # lets go of what was committed
    assert not store.peek_host("ie", "h1")["connectivity"].held  # type: ignore[index]
    assert store.peek_host("ie", "h1")["free_addresses"].held  # type: ignore[index]
    store.close()
    again = Store(tmp_path / "db")
    loaded = again.peek_host("ie", "h1") or {}
    assert isinstance(loaded["connectivity"], StoredText) and not loaded["connectivity"].held
    assert isinstance(loaded["free_addresses"], StoredText) and loaded["free_addresses"].held
    assert public(loaded) == {"id": "h1", "infra_env_id": "ie", "status": "known", "connectivity": big,
                              "free_addresses": mid, "domain_name_resolutions": "small",
                              "updated_at": loaded["updated_at"]}
    again.close()


def test_an_in_memory_store_holds_every_text(tmp_path: Path) -> None:
    store = Store(":memory:")
    reply = {"step_id": "s-1", "step_type": "connectivity-check", "exit_code": 0, "output": "c" * 100_000}
    store.add_reply("ie", "h1", reply)
    store.save_host({"id": "h1", "infra_env_id": "ie", "connectivity": store.keep_text("h1", reply)})
    store.flush()
    store.save_host(store.get_host("ie", "h1") or {})
    handle = (store.peek_host("ie", "h1") or {})["connectivity"]
    assert isinstance(handle, StoredText) and handle.held and handle.text() == "c" * 100_000
    store.close()


def test_a_big_reply_comes_back_from_its_worker_with_what_the_rules_derive(
        big: tuple[ReferenceService, str, list[str]]) -> None:
    """The reply worker computes the derivers of the rulebook (``documents.deriver``) and a report's reach over the
    machine networks, so the loop and the digest's thread do not: what it hands back is what they would
    compute, and the service uses it as it is."""
    svc, ie, ids = big
    reply = {"step_id": "connectivity-check-9", "step_type": "connectivity-check", "exit_code": 0,
             "output": _report(ids, ids[0])}
    cidrs = ("10.0.0.0/24", "10.1.0.0/24")
    refused, back, derived = reply_workers.Checker(svc.rulebook).verdict(json.dumps(reply).encode(), False, cidrs)
    assert refused is None and back == reply and derived is not None
    parsed = json.loads(str(reply["output"]))
    assert set(derived.fields["connectivity"]) >= {"_flagged", "_l2_conflicts"}
    assert derived.fields == {"connectivity": svc.rulebook.derive_all("connectivity", parsed)}
    assert derived.reach == (cidrs, {peer: 0b01 for peer in ids[1:]})

    marked = {name: ("from the worker", name) for name in derived.fields["connectivity"]}
    offered = (cidrs[:1], {peer: 0b1 for peer in ids[1:3]})  # (marked too: the model takes what it is given)
    svc.apply_reply(ie, ids[0], reply, parsed, Derived({"connectivity": marked}, offered))
    host = svc.store.peek_host(ie, ids[0]) or {}
    model = svc.model_of(host)
    assert model.fact(host, "connectivity", network_validations._flagged) == ("from the worker", "_flagged")
    model.sync(svc.store.peek_cluster(host["cluster_id"]), svc.store.peers(cluster_id=host["cluster_id"]))
    assert model._hosts[ids[0]].reach == (sum(1 << model._index[p] for p in ids[1:3]),)  # not parsed again

    raw = json.dumps({**reply, "step_id": "connectivity-check-10"}).encode()
    try:
        back, parsed, derived = asyncio.run(svc.reply_workers.check(raw, False, cidrs))
    finally:
        svc.reply_workers.shutdown()
    assert parsed is registry.CHECKED, "the loop does not decode a report its handler only stores"
    svc.apply_reply(ie, ids[0], back, parsed, derived)
    host = svc.store.peek_host(ie, ids[0]) or {}
    assert host["connectivity"].step_id == "connectivity-check-10"
    assert derived is not None
    assert svc.model_of(host).fact(host, "connectivity", network_validations._flagged) == \
        derived.fields["connectivity"]["_flagged"]

    failed = {**reply, "exit_code": 1, "error": "nmap failed"}
    checker = reply_workers.Checker(svc.rulebook)
    assert checker.verdict(json.dumps(failed).encode(), False)[2] is None
    assert checker.verdict(b'{"step_id": 3}', False)[0][0] == 400  # type: ignore[index]


def test_a_hosts_history_keeps_the_newest_replies_and_what_its_fields_refer_to(tmp_path: Path) -> None:
    """1,000 hosts answering every 10 s would grow the history by 3 MB a second: a host keeps the newest
    ``KEEP_REPLIES`` of each step type (``KEEP_BIG_REPLIES`` of big outputs), and any its fields refer to."""
    store = Store(tmp_path / "db")
    for n in range(store_module.KEEP_REPLIES + 10):
        store.add_reply("ie", "h1", {"step_id": f"ntp-{n}", "step_type": "ntp-synchronizer", "output": str(n)})
    store.add_reply("ie", "h1", {"step_id": "inventory-1", "step_type": "inventory", "output": "{}"})
    store.add_reply("ie", "h2", {"step_id": "ntp-0", "step_type": "ntp-synchronizer", "output": "0"})
    assert [r["step_id"] for r in store.replies("h1", "ntp-synchronizer")] == \
        [f"ntp-{n}" for n in range(10, store_module.KEEP_REPLIES + 10)]
    assert len(store.replies("h1", "inventory")) == 1 and len(store.replies("h2")) == 1

    big = {"step_id": "connectivity-check-0", "step_type": "connectivity-check", "exit_code": 0,
           "output": "r" * (store_refs.SPILL + 1)}
    store.add_reply("ie", "h1", big)
    store.save_host({"id": "h1", "infra_env_id": "ie", "connectivity": store.keep_text("h1", big)})
    for n in range(1, 5):  # failed checks: the host keeps its last report
        store.add_reply("ie", "h1", {**big, "step_id": f"connectivity-check-{n}", "exit_code": 1})
    assert [r["step_id"] for r in store.replies("h1", "connectivity-check")] == \
        ["connectivity-check-0", "connectivity-check-3", "connectivity-check-4"]
    store.save_host(store.get_host("ie", "h1") or {})  # lets go of the text
    assert public(store.get_host("ie", "h1") or {})["connectivity"] == big["output"]
    store.close()
