"""An acknowledged write is on disk (issue 26): a request's wait for its writes ends only once the process that
commits them (store.committer) says they are committed and their WAL synced; that process is not this one, so
the event loop never writes to the database's filesystem. The frozen filesystem and the power cut themselves
are in tests/e2e/test_store_storage.py."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import psutil
import pytest

from reference_service.store import committer
from reference_service.store import writer as writer_module
from reference_service.store.committer import Frames, frame
from reference_service.store.writer import Writer


def test_frames_come_out_whole_from_any_pieces() -> None:
    messages = [("c", 1), (7, [("INSERT INTO t VALUES (?)", ("x" * 70_000,))]), ("e", "disk full")]
    stream = b"".join(frame(m) for m in messages)
    frames = Frames()
    got = [m for i in range(0, len(stream), 333) for m in frames.feed(stream[i:i + 333])]
    assert got == messages


def test_writes_are_committed_and_synced_by_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    before = {p.pid for p in psutil.Process().children()}
    w = Writer(path)
    w.execute_now("CREATE TABLE t (x)")
    committer = [p for p in psutil.Process().children() if p.pid not in before
                 and "reference_service.store.committer" in " ".join(p.cmdline())]
    assert len(committer) == 1 and committer[0].pid != os.getpid()

    async def scenario() -> None:
        for i in range(50):
            w.submit("INSERT INTO t VALUES (?)", (i,))
            if i % 10 == 9:
                await w.committed()  # what a request does before it answers
                assert w.synced >= w.enqueued and w.done >= w.enqueued

    try:
        asyncio.run(scenario())
        w.submit("INSERT INTO t VALUES (?)", (50,))
        w.flush()  # synchronous code reads its writes
        assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone() == (51,)
        assert w.stuck() is None
    finally:
        w.close()
    assert not committer[0].is_running() or committer[0].status() == psutil.STATUS_ZOMBIE


def test_a_committing_process_that_dies_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed (the OOM killer, a stray kill), it took every later write with it: each was refused with 503 until
    the service restarted. Now the writer starts another and sends it what was not reported committed."""
    monkeypatch.setattr(writer_module, "RESTART_SECONDS", 0.0)  # (killed at once here)
    path = str(tmp_path / "db.sqlite")
    w = Writer(path)
    w.execute_now("CREATE TABLE t (x)")
    first = w._proc
    assert first is not None

    async def scenario() -> None:
        w.submit("INSERT INTO t VALUES (?)", (1,))
        await w.committed()
        first.kill()
        first.wait()
        for i in (2, 3):
            w.submit("INSERT INTO t VALUES (?)", (i,))
            await asyncio.wait_for(w.committed(), 60)  # (a 503 raises StoreUnavailable)

    try:
        asyncio.run(scenario())
        assert w._proc is not None and w._proc.pid != first.pid and w.stuck() is None
    finally:
        w.close()
    assert sqlite3.connect(path).execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,), (3,)]


def test_a_replacement_commits_nothing_its_predecessor_committed(tmp_path: Path) -> None:
    """A batch may be committed by a process that dies before it says so; the writer sends it again, and the
    replacement (same run) skips it: each transaction records how far the run got."""
    path = str(tmp_path / "db.sqlite")
    sqlite3.connect(path).execute("CREATE TABLE t (x)")
    batch = (1, [("INSERT INTO t VALUES (?)", (1,))])

    def talk(frames: list[bytes], until: object) -> list[object]:
        """What a new process of the run answers to ``frames``, up to ``until``."""
        proc, sock = committer.spawn(path, "run-a", durable=True)
        sock.setblocking(True)
        sock.settimeout(60)
        sock.sendall(b"".join(frames))
        got: list[object] = []
        feed = Frames()
        while until not in got:
            data = sock.recv(1 << 16)
            assert data, f"the process ended after {got}"
            got += feed.feed(data)
        sock.close()
        committer.reap(proc)
        return got

    assert talk([frame(batch)], ("s", 1))[0] == ("c", 1)
    again = talk([frame(batch), frame((2, [("INSERT INTO t VALUES (?)", (2,))]))], ("s", 2))
    assert again[0] == ("c", 1) and ("c", 2) in again and ("e" not in [m[0] for m in again])  # type: ignore[index]
    assert sqlite3.connect(path).execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
