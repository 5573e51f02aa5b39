"""The store keeps documents in memory and writes them through one writer thread: what it hands out is the
caller's to change, what it acknowledges is on disk, and a database that cannot be written is said so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from reference_service.store.database import Store
from reference_service.store.writer import StoreUnavailable, Writer
from tests.support.paths import ROOT


def _host(host_id: str, cluster: str | None = "c1") -> dict[str, object]:
    return {"id": host_id, "infra_env_id": "ie", "cluster_id": cluster, "status": "known", "progress": {"a": 1}}


def test_documents_handed_out_are_copies_and_peers_are_the_stored_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.save_host(_host("h1"))
    got = store.get_host("ie", "h1")
    assert got is not None
    got["status"] = "changed"
    got["progress"]["a"] = 2  # nested too
    assert store.get_host("ie", "h1") == {**_host("h1"), "updated_at": got["updated_at"]}
    assert store.peers(cluster_id="c1")[0] is store.peek_host("ie", "h1")
    store.close()


def test_a_bound_host_is_listed_in_registration_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.save_host(_host("h1", None))
    store.save_host(_host("h2"))
    store.save_host(_host("h1"))  # registered first, bound later
    assert [h["id"] for h in store.peers(cluster_id="c1")] == ["h1", "h2"]
    store.close()
    again = Store(tmp_path / "db")
    assert [h["id"] for h in again.peers(cluster_id="c1")] == ["h1", "h2"]
    again.close()


def test_a_check_in_kept_in_memory_is_written_by_persist(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.save_host(_host("h1"))
    store.save_host({**_host("h1"), "checked_in_at": "later"}, durable=False)
    store.flush()
    other = Store(tmp_path / "db")
    assert (other.get_host("ie", "h1") or {}).get("checked_in_at") is None
    other.close()
    store.persist()
    store.flush()
    other = Store(tmp_path / "db")
    assert (other.get_host("ie", "h1") or {})["checked_in_at"] == "later"
    other.close()
    store.close()


def test_a_check_in_alone_is_written_without_the_document_and_other_changes_with_it(tmp_path: Path) -> None:
    """At 1,000 hosts a document holds a 300 KB connectivity report: persisting a poll's check-in rewrote it."""
    import sqlite3

    def rows(table: str) -> list[tuple[str, str]]:
        db = sqlite3.connect(tmp_path / "db")
        try:
            return list(db.execute(f"SELECT id, {'doc' if table == 'hosts' else 'fields'} FROM {table}"))
        finally:
            db.close()

    store = Store(tmp_path / "db")
    store.save_host({**_host("h1"), "report": "x" * 1000, "_checked_in": 1.0})
    store.save_host({**_host("h2"), "_checked_in": 1.0})
    store.flush()
    written = rows("hosts")
    store.save_host({**_host("h1"), "report": "x" * 1000, "checked_in_at": "later", "_checked_in": 2.0},
                    durable=False)
    store.save_host({**_host("h2"), "status": "insufficient", "_checked_in": 2.0}, durable=False)
    store.persist()
    store.flush()
    assert [r for r in rows("hosts") if r[0] == "h1"] == [r for r in written if r[0] == "h1"]  # not rewritten
    assert [r[0] for r in rows("checkins")] == ["h1"]
    assert "insufficient" in dict(rows("hosts"))["h2"]  # a change beyond the check-in: the document
    other = Store(tmp_path / "db")
    assert (other.get_host("ie", "h1") or {})["checked_in_at"] == "later"
    assert (other.get_host("ie", "h1") or {})["report"] == "x" * 1000
    other.close()
    store.save_host({**_host("h1"), "report": "y", "_checked_in": 3.0})  # a later full write wins
    store.flush()
    other = Store(tmp_path / "db")
    assert (other.get_host("ie", "h1") or {})["report"] == "y"
    assert (other.get_host("ie", "h1") or {})["_checked_in"] == 3.0
    other.delete_host("ie", "h1")
    other.close()
    assert rows("checkins") == []
    store.close()


def test_what_a_request_waited_for_survives_a_kill_9(tmp_path: Path) -> None:
    """A child process saves, waits for ``committed`` (what the service does before answering), says so and
    is killed -9 at once: everything it acknowledged is in the database."""
    code = f"""
import asyncio, sys
from reference_service.store.database import Store
store = Store({str(tmp_path / 'db')!r})
async def main():
    for i in range(200):
        store.add_reply("ie", f"h{{i}}", {{"step_id": f"s-{{i}}", "step_type": "inventory", "output": "x" * 5000}})
        await store.committed()
        print(i, flush=True)
asyncio.run(main())
import time; time.sleep(60)
"""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, start_new_session=True)
    assert child.stdout is not None
    acknowledged = -1
    for line in child.stdout:
        acknowledged = int(line)
        if acknowledged == 120:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=30)
    store = Store(tmp_path / "db")
    assert len(store.replies()) >= acknowledged + 1 == 121  # a host each: none is beyond the history kept
    store.close()


def test_a_database_that_cannot_be_written_is_reported_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "db"
    writer = Writer(str(path))
    writer.execute_now("CREATE TABLE t (v TEXT NOT NULL)")
    writer.submit("INSERT INTO t (v) VALUES (?)", (None,))  # refused by SQLite: NOT NULL

    async def wait() -> None:
        await writer.committed()

    with pytest.raises(StoreUnavailable, match="cannot be written"):
        asyncio.run(wait())
    assert writer.error and "NOT NULL" in writer.error
    writer.close()


def test_reads_see_the_writes_before_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    for i in range(500):
        store.add_event(f"e{i}", host_id="h1")
    assert [e["message"] for e in store.events(host_id="h1", last=1)] == ["e499"]
    store.close()


def test_an_in_memory_store_works(tmp_path: Path) -> None:
    store = Store(":memory:")
    store.save_host(_host(str(uuid.uuid4())))
    store.add_reply("ie", "h", {"step_type": "inventory"})
    assert len(store.replies("h")) == 1
    store.close()


def test_a_host_row_refers_to_the_reply_its_big_field_came_from(tmp_path: Path) -> None:
    """A field holding a reply's output verbatim (a 330 KB connectivity report at 1,000 hosts) is not written
    again with the host: the row points at the reply, and loading it puts the text back."""
    store = Store(tmp_path / "db")
    report = json.dumps({"remote_hosts": [{"host_id": str(i)} for i in range(1000)]})
    reply = {"step_id": "connectivity-check-1", "step_type": "connectivity-check", "exit_code": 0,
             "output": report}
    store.add_reply("ie", "h1", reply)
    host = _host("h1")
    host["connectivity"] = store.keep_text("h1", reply)
    host["domain_name_resolutions"] = "x" * 10_000  # not a reply's output: copied as before
    store.save_host(host)
    store.close()
    (row,) = sqlite3.connect(tmp_path / "db").execute("SELECT doc FROM hosts").fetchone()
    assert len(row) < 12_000 and '"$reply"' in row
    again = Store(tmp_path / "db")
    loaded = again.get_host("ie", "h1") or {}
    assert loaded["connectivity"].text() == report and loaded["domain_name_resolutions"] == "x" * 10_000
    again.close()
