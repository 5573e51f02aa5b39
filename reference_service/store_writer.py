"""The store's one writer: a thread that commits queued statements in batches, so that no request waits on
SQLite while it is served and a hundred polls a second cost a few commits a second, not a hundred.

A request that must be durable before it is answered (a step reply, a registration: anything acknowledged)
waits for the batch holding its writes with :meth:`Writer.committed` (asyncio) or :meth:`Writer.flush`
(threads); a commit in WAL mode survives a kill -9 of the service, so what was acknowledged is never lost.
A failed batch (the disk is full, say) is kept and retried with back-off, and the waiters are told why, so a
reply is refused with a clear message rather than acknowledged and lost.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from typing import Any

from reference_service import json_codec

log = logging.getLogger("reference_service")

#: Back-off between retries of a batch that could not be committed.
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
CHECKPOINT_SECONDS = 1.0


class AsJson:
    """A document to store as JSON, encoded by the writer thread rather than by the request that saved it
    (a host document with a 1,000-peer connectivity report takes a millisecond to encode). The document must
    not change after it is submitted: the store submits its own copies, which it replaces, never changes."""

    __slots__ = ("doc",)

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def encode(self) -> str:
        return json_codec.dumps(self.doc)


class StoreUnavailable(Exception):
    """The database could not be written; carries SQLite's reason."""


class Writer:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, uri=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Checkpoints move the WAL into the database: done by a thread of their own (PASSIVE: never blocking
        # a commit), not by the commit that crosses the threshold, which then took up to a second.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._cond = threading.Condition()
        self._queue: list[tuple[str, tuple[Any, ...]]] = []
        self.enqueued = 0
        self.done = 0
        self.error: str | None = None
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, args=(path,), name="store-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoints(self, path: str) -> None:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, uri=True)
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            db.close()

    def execute_now(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """A statement run at once, before the writer has anything queued (schema and migrations)."""
        with self._cond:
            self._db.executescript(sql) if not args else self._db.execute(sql, args)

    def submit(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._cond:
            self._queue.append((sql, args))
            self.enqueued += 1
            self._cond.notify()
            return self.enqueued

    def flush(self, upto: int | None = None, timeout: float = 60.0) -> None:
        """Wait (in a thread) until everything submitted so far is committed."""
        with self._cond:
            target = self.enqueued if upto is None else upto
            if not self._cond.wait_for(lambda: self.done >= target, timeout):
                raise StoreUnavailable(self.error or f"the database did not commit within {timeout:g} s")

    async def committed(self, upto: int | None = None) -> None:
        """Wait (on the event loop) until everything submitted so far is committed."""
        loop = asyncio.get_running_loop()
        with self._cond:
            target = self.enqueued if upto is None else upto
            if self.done >= target:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((target, loop, future))
            error = self.error
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=30 if error is None else 5)
        except TimeoutError:
            raise StoreUnavailable(self.error or "the database did not commit within 30 s") from None

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
        self._stop.set()
        self._checkpointer.join(timeout=30)
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        self._db.close()

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closing)
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                upto = self.enqueued
            try:
                self._commit(batch)
            except sqlite3.Error as exc:
                failures += 1
                with self._cond:
                    self.error = f"the database cannot be written: {exc}"
                    self._queue[:0] = batch  # kept, in order, for the retry
                log.error("%s (%d statements waiting; retrying)", self.error, len(self._queue))
                self._wake(None)
                if self._closing and failures > 3:
                    return
                with self._cond:
                    self._cond.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])
                continue
            failures = 0
            with self._cond:
                self.error = None
                self.done = upto
                self._cond.notify_all()
            self._wake(upto)

    def _commit(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for sql, args in batch:
                db.execute(sql, tuple(a.encode() if isinstance(a, AsJson) else a for a in args))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _wake(self, upto: int | None) -> None:
        """Resolve the waiters a commit covers (``upto``), or fail them all with the error (None)."""
        with self._cond:
            if upto is None:
                ready, self._waiters = self._waiters, []
            else:
                ready = [w for w in self._waiters if w[0] <= upto]
                self._waiters = [w for w in self._waiters if w[0] > upto]
            error = self.error
        for _, loop, future in ready:
            loop.call_soon_threadsafe(_settle, future, error if upto is None else None)


def _settle(future: asyncio.Future[None], error: str | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(StoreUnavailable(error))
