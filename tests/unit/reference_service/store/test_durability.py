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
