"""reference_service.store.history: replies, events, the request journal and blobs, appended and read back in
order, filtered in SQL, the newest N from the index."""

from __future__ import annotations

from pathlib import Path

from reference_service.store.database import Store
from reference_service.store.history import _iso, _where


def test_replies_and_the_newest_of_each_type(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:
        for i, step_type in enumerate(["inventory", "ntp-synchronizer", "inventory"]):
            store.add_reply("ie", "h1", {"step_id": f"s{i}", "step_type": step_type, "exit_code": i, "output": "o"})
        store.add_reply("ie", "h2", {"step_id": "other", "step_type": "inventory"})
        store.flush()
        assert [r["step_id"] for r in store.replies("h1")] == ["s0", "s1", "s2"]
        assert [r["step_id"] for r in store.replies("h1", "inventory", last=1)] == ["s2"]
        assert [r["step_id"] for r in store.replies()] == ["s0", "s1", "s2", "other"]
        assert [(r["step_id"], r["exit_code"]) for r in store.latest_replies("h1")] == [("s1", 1), ("s2", 2)]
    finally:
        store.close()


def test_events_requests_and_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:
        store.add_event("registered", host_id="h1", cluster_id="c1")
        store.add_event("cluster ready", severity="warning", cluster_id="c1")
        store.add_request("POST", "/x", {"A": "b"}, '{"k": 1}', 201)
        store.put_blob("logs", b"\x00\x01")
        store.put_blob("logs", b"\x02")
        store.flush()
        events = store.events(cluster_id="c1")
        assert [(e["message"], e["severity"], e["host_id"]) for e in events] == [
            ("registered", "info", "h1"), ("cluster ready", "warning", None)]
        assert [e["message"] for e in store.events(host_id="h1")] == ["registered"]
        assert [e["message"] for e in store.events(last=1)] == ["cluster ready"]
        assert events[0]["event_time"].endswith("Z") and "T" in events[0]["event_time"]
        [request] = store.requests()
        assert (request["method"], request["path"], request["headers"], request["body"], request["status"]) == (
            "POST", "/x", {"A": "b"}, '{"k": 1}', 201)
        assert store.get_blob("logs") == b"\x02" and store.get_blob("none") is None
    finally:
        store.close()


def test_where_binds_values_and_names_only_given_columns() -> None:
    assert _where(host_id=None, step_type=None) == ("", ())
    assert _where(host_id="h'1", step_type=None) == (" WHERE host_id = ?", ("h'1",))
    assert _iso(0.5) == "1970-01-01T00:00:00.500Z"
