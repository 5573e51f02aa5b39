"""An acknowledged write is on disk (issue 26): a request's wait for its writes ends only once the WAL holding
them is synced, and the sync runs off the event loop (the loop serves meanwhile)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from reference_service.store.writer import Writer


def test_committed_waits_for_the_wal_to_be_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    synced: list[str] = []
    real = os.fdatasync

    def slow_disk(fd: int) -> None:  # the disk takes its time: the acknowledgement must wait for it
        release.wait(10)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_disk)
    path = str(tmp_path / "db.sqlite")
    w = Writer(path)
    w.execute_now("CREATE TABLE t (x)")

    async def scenario() -> tuple[bool, int]:
        w.submit("INSERT INTO t VALUES (?)", (1,))
        waiting = asyncio.create_task(w.committed())
        turns = 0
        for _ in range(20):  # the loop keeps turning while the disk syncs
            await asyncio.sleep(0.01)
            turns += 1
        early = waiting.done()
        release.set()
        await asyncio.wait_for(waiting, 10)
        return early, turns

    try:
        early, turns = asyncio.run(scenario())
    finally:
        release.set()
        w.close()
    assert not early, "the write was acknowledged before it was on disk"
    assert turns == 20
    assert synced and synced[0].endswith("db.sqlite-wal")
