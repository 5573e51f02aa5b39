"""A big cluster (more hosts than ``settler.AT_ONCE_HOSTS``) is evaluated as the real service does it: a
poll that changes nothing evaluates nothing and writes nothing, a host is evaluated again when what the
monitor saw of its cluster changed or after REEVALUATE_SECONDS, a cycle's replies cost one evaluation, and
the monitor finds the hosts that stopped polling and computes the cluster's majority groups. What an
evaluation concludes is the same at every size (``test_settler.py``); only when it runs differs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_service import settler as settler_module
from reference_service.orchestrator import ReferenceService
from rules import states
from tests.support.big_cluster import big_cluster
from tests.support.spies import noted_calls

HOSTS = 6


@pytest.fixture
def big(tmp_path: Path) -> Iterator[tuple[ReferenceService, str, list[str]]]:
    with big_cluster(tmp_path, HOSTS) as made:
        yield made


def _evaluations(svc: ReferenceService, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return noted_calls(monkeypatch, svc.settler, "validations", lambda view: str(view.host["id"]))


def test_a_poll_that_changes_nothing_evaluates_and_writes_nothing(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ie, ids = big
    settler = svc.settler
    seen = _evaluations(svc, monkeypatch)

    def poll(host_id: str) -> None:  # and the settler's pass after it
        svc.next_steps(ie, host_id, None, None)
        while settler.settle():
            pass

    svc.next_steps(ie, ids[0], None, None)  # evaluated when it registered, not since as part of a big cluster
    assert seen == [] and ids[0] in settler.dirty  # not while the poll is served: by the settler, after it
    assert settler.settle() == 1 and seen == [ids[0]] and settler.settle() == 0
    seen.clear()
    poll(ids[0])
    assert seen == []  # evaluated less than REEVALUATE_SECONDS ago, and nothing it depends on changed
    writes = svc.store.submitted
    poll(ids[0])
    assert svc.store.submitted == writes
    when, version = settler.evaluated[ids[0]]
    settler.evaluated[ids[0]] = (when - settler_module.REEVALUATE_SECONDS, version)
    poll(ids[0])
    assert seen == [ids[0]]  # too long ago
    seen.clear()
    poll(ids[0])
    assert seen == []
    asyncio.run(settler.tick())  # what the hosts are judged by is new to the monitor: every host is due
    seen.clear()
    poll(ids[0])
    poll(ids[1])
    assert seen == [ids[0], ids[1]]
    seen.clear()
    asyncio.run(settler.tick())  # nothing changed: nobody is
    poll(ids[0])
    assert seen == []


def test_a_cluster_change_that_only_sums_up_its_hosts_makes_none_of_them_due(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each host that became known changed the cluster's counts and status_info; every host of a 1,000-host
    cluster was then evaluated again after each monitor pass of a discovery (docs/scale.md). Only a change of
    what the hosts are judged by makes them due."""
    svc, ie, ids = big
    settler = svc.settler

    def wave() -> list[str]:  # every host polls once, and the settler's pass after them
        seen.clear()
        for host_id in ids:
            svc.next_steps(ie, host_id, None, None)
        while settler.settle(older_than=0):
            pass
        return list(seen)

    def change(**fields: Any) -> None:
        cluster = svc.store.get_cluster(svc.store.get_host(ie, ids[0])["cluster_id"])  # type: ignore[index]
        assert cluster is not None
        cluster.update(fields)
        svc.store.save_cluster(cluster)
        asyncio.run(settler.tick())

    seen = _evaluations(svc, monkeypatch)
    asyncio.run(settler.tick())
    wave()
    assert wave() == []  # all evaluated since the cluster last moved
    change(ready_host_count=3, total_host_count=99, status_info="Cluster is not ready for install: 3 of 9 hosts "
           "are known", validations_info='{"network": []}', updated_at="2026-01-01T00:00:00Z")
    assert wave() == []
    change(base_dns_domain="changed.example.com")  # one the hosts are judged by
    assert sorted(wave()) == sorted(ids)


def test_a_disconnected_host_is_evaluated_by_its_poll(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ie, ids = big
    host = svc.store.get_host(ie, ids[2])
    assert host is not None
    host["status"] = "disconnected"
    svc.store.save_host(host)
    seen = _evaluations(svc, monkeypatch)
    svc.next_steps(ie, ids[2], None, None)
    assert seen == [ids[2]]
    assert not str((svc.store.get_host(ie, ids[2]) or {}).get("status")).startswith("disconnected")


def test_a_cycles_changed_replies_cost_one_evaluation_an_unchanged_one_none(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ie, ids = big
    settler = svc.settler
    svc.next_steps(ie, ids[1], None, None)
    while settler.settle(older_than=0):
        pass
    seen = _evaluations(svc, monkeypatch)
    ntp = {"step_id": "ntp-synchronizer-1", "step_type": "ntp-synchronizer",
           "output": '{"ntp_sources": [{"source_name": "10.0.0.1", "source_state": "synced"}]}'}
    dns = {"step_id": "domain-resolution-1", "step_type": "domain-resolution",
           "output": '{"resolutions": [{"domain_name": "api.big.example.com"}]}'}
    svc.post_reply(ie, ids[1], ntp)
    svc.post_reply(ie, ids[1], dns)
    assert seen == [] and list(settler.dirty) == [ids[1]]
    assert settler.settle() == 0  # younger than SETTLE_SECONDS: the rest of the cycle's replies may come
    assert settler.settle(older_than=0) == 1 and seen == [ids[1]]
    stored = svc.store.get_host(ie, ids[1]) or {}
    assert "10.0.0.1" in stored["ntp_sources"] and stored["domain_name_resolutions"] == dns["output"]
    svc.post_reply(ie, ids[1], ntp)
    assert not settler.dirty and seen == [ids[1]]


def test_the_monitor_disconnects_silent_hosts_and_groups_the_cluster(
        big: tuple[ReferenceService, str, list[str]]) -> None:
    svc, ie, ids = big
    host = svc.store.get_host(ie, ids[2])
    assert host is not None
    host["_checked_in"] = time.time() - states.DISCONNECTION_TIMEOUT - 1
    svc.store.save_host(host)
    cluster_id = str(host["cluster_id"])
    model = svc.model(cluster_id)
    assert not model.groups_current
    asyncio.run(svc.settler.tick())
    assert (svc.store.get_host(ie, ids[2]) or {})["status"] == "disconnected"
    assert {(svc.store.get_host(ie, i) or {})["status"] for i in ids[3:]} != {"disconnected"}
    assert model.groups_current and model.peer(ids[0]) is not None
    assert (svc.store.get_cluster(cluster_id) or {})["total_host_count"] == HOSTS + settler_module.AT_ONCE_HOSTS


def test_each_clusters_model_follows_every_saved_document_without_scanning_the_cluster(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The store tells the service of each document it replaces or deletes, and the cluster's model takes that
    one host: a poll of a 1,000-host cluster must not walk the cluster (a full sync per request was most of the
    service's time at 1,000 hosts)."""
    svc, ie, ids = big
    host = svc.store.get_host(ie, ids[0])
    assert host is not None
    model = svc.model_of(host)
    svc.view(host)  # the model is made, and synced in full once
    monkeypatch.setattr(model, "sync", lambda *_: pytest.fail("synced in full again"))
    svc.next_steps(ie, ids[1], None, None)
    renamed = {**(svc.store.get_host(ie, ids[1]) or {}), "requested_hostname": "taken",
               "inventory": '{"hostname": "reported"}'}
    svc.store.save_host(renamed)
    assert model.hostname_taken(ids[0], "taken") and model.label(ids[1]) == "taken"
    svc.store.delete_host(ie, ids[1])
    assert model.peer(ids[1]) is None and not model.hostname_taken(ids[0], "taken")


def test_a_big_cluster_whose_hosts_move_is_evaluated_at_most_once_a_settle_period(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A big cluster's evaluation reads every host; evaluated on every settler pass that found no host ready, it
    took a quarter of the service's CPU in a 1,000-host discovery (docs/scale.md)."""
    svc, ie, ids = big
    settler = svc.settler
    cluster_id = str((svc.store.get_host(ie, ids[0]) or {})["cluster_id"])
    evaluated = noted_calls(monkeypatch, settler, "evaluate_cluster", lambda cid, *_a, **_k: cid)
    monkeypatch.setattr(settler_module, "CLUSTER_SETTLE_SECONDS", 3600.0)  # (no clock in this test)
    settler.clusters_evaluated.pop(cluster_id, None)  # (evaluated as its hosts were made)
    settler.dirty_clusters.add(cluster_id)
    assert settler.settle() == 0 and evaluated == [cluster_id] and not settler.dirty_clusters
    settler.dirty_clusters.add(cluster_id)  # a host moved again
    settler.settle()
    assert evaluated == [cluster_id] and settler.dirty_clusters == {cluster_id}  # not yet: it stays dirty
    settler.clusters_evaluated[cluster_id] -= 3600.0  # the period has passed
    settler.settle()
    assert evaluated == [cluster_id, cluster_id] and not settler.dirty_clusters


def test_an_evaluation_and_a_poll_read_the_stored_cluster_and_a_reply_changes_a_copy(
        big: tuple[ReferenceService, str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every view copied the cluster document (now with its validations, networks and VIPs: a fifth of a
    view's cost at 1,000 hosts, docs/scale.md). The validations and step arguments only read it, so their
    views hold the stored document; a reply's handlers may change it (a DHCP lease, a VIP verdict) and get a
    copy, saved only if it changed."""
    svc, ie, ids = big
    stored = svc.store.peek_cluster(svc.store.get_host(ie, ids[0])["cluster_id"])  # type: ignore[index]
    seen = noted_calls(monkeypatch, svc.settler, "validations", lambda view: view.cluster)
    svc.next_steps(ie, ids[0], None, None)
    while svc.settler.settle(older_than=0):
        pass
    host = svc.store.get_host(ie, ids[0])
    assert seen and all(c is stored for c in seen)
    assert svc.view(host, reading=True).cluster is stored  # type: ignore[arg-type]
    mine = svc.view(host).cluster  # type: ignore[arg-type]
    assert mine == stored and mine is not stored
