"""The store answers each request's lookups from an index, so a poll or a page costs the same with many hosts.

Checked two ways: the answers (newest rows, one host's or one cluster's, filters applied in SQL) and SQLite's own
query plan, which says whether a lookup searches an index or scans the table.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_service.store.database import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store, closed at the end (its committer process ends with it)."""
    made = Store(tmp_path / "db.sqlite")
    try:
        yield made
    finally:
        made.close()


def _host(infra_env: str, host_id: str, cluster: str | None) -> dict[str, object]:
    return {"id": host_id, "infra_env_id": infra_env, "cluster_id": cluster, "status": "discovering"}


def _plan(store: Store, sql: str, args: tuple[object, ...]) -> str:
    rows = store._db.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


def test_hosts_by_cluster_follow_rebinding(store: Store) -> None:
    store.save_host(_host("ie1", "h1", "c1"))
    store.save_host(_host("ie1", "h2", None))
    store.save_host(_host("ie2", "h3", "c1"))
    assert [h["id"] for h in store.list_hosts(cluster_id="c1")] == ["h1", "h3"]
    assert [h["id"] for h in store.list_hosts(infra_env_id="ie1")] == ["h1", "h2"]
    store.save_host(_host("ie1", "h1", None))
    store.save_host(_host("ie1", "h2", "c1"))
    assert [h["id"] for h in store.list_hosts(cluster_id="c1")] == ["h2", "h3"]
    assert [h["id"] for h in store.list_hosts(infra_env_id="ie1", cluster_id="c1")] == ["h2"]
    assert "USING INDEX hosts_by_cluster" in _plan(store, "SELECT doc FROM hosts WHERE cluster_id = ?", ("c1",))


def test_newest_replies_and_events_come_from_the_index(store: Store) -> None:
    for i in range(50):
        for host in ("h1", "h2"):
            step_type = ("inventory", "free-network-addresses", "ntp-synchronizer")[i % 3]
            store.add_reply("ie", host, {"step_id": f"{step_type}-{i}", "step_type": step_type, "output": str(i)})
            store.add_event(f"{host} event {i}", host_id=host, cluster_id="c" + host)
    latest = store.latest_replies("h1")
    assert sorted((r["step_type"], r["step_id"]) for r in latest) == [
        ("free-network-addresses", "free-network-addresses-49"), ("inventory", "inventory-48"),
        ("ntp-synchronizer", "ntp-synchronizer-47")]
    assert [r["step_id"] for r in store.replies("h2", last=3)] == [
        "ntp-synchronizer-47", "inventory-48", "free-network-addresses-49"]
    assert [r["output"] for r in store.replies("h1", "inventory", last=2)] == ["45", "48"]
    assert len(store.replies("h1")) == 50
    assert [e["message"] for e in store.events(host_id="h2", last=2)] == ["h2 event 48", "h2 event 49"]
    assert [e["message"] for e in store.events(cluster_id="ch1")][:1] == ["h1 event 0"]
    assert len(store.events()) == 100
    assert "USING" in _plan(store, "SELECT seq FROM replies WHERE host_id = ? ORDER BY seq", ("h1",))
    assert "USING" in _plan(store, "SELECT seq FROM events WHERE host_id = ? ORDER BY seq", ("h1",))
    assert "USING" in _plan(store, "SELECT seq FROM events WHERE cluster_id = ? ORDER BY seq", ("c",))


def test_a_database_from_before_the_cluster_column_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE hosts (infra_env_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,"
                " PRIMARY KEY (infra_env_id, id))")
    old.execute("INSERT INTO hosts VALUES (?, ?, ?)", ("ie", "h1", json.dumps(_host("ie", "h1", "c9"))))
    old.commit()
    old.close()
    store = Store(path)
    try:
        assert [h["id"] for h in store.list_hosts(cluster_id="c9")] == ["h1"]
    finally:
        store.close()
