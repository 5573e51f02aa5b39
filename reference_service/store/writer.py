"""The store's writes: queued statements committed in batches, a group commit once per turn of the event loop,
so that a hundred polls a second cost a few commits a second, not a hundred.

A request that must be durable before it is answered (a step reply, a registration: anything acknowledged)
waits for the batch holding its writes with :meth:`Writer.committed` (asyncio) or :meth:`Writer.flush`
(synchronous code); a commit in WAL mode survives a kill -9 of the service, so what was acknowledged is never
lost. A failed batch (the disk is full, say) is kept and retried with back-off, and the waiters are told why,
so a reply is refused with a clear message rather than acknowledged and lost.

Why commits run on the event loop's thread and not in a writer thread of their own (docs/scale.md): the
sqlite3 module gives up the GIL around every statement, and a writer thread had to win it back from the busy
loop each time, and once more to hand each commit back. At 1,000 hosts a request waited 0.1 to 0.5 s for a
commit that took under 2 ms. A commit here costs the loop about 0.1 ms for the few statements of one turn, and
nothing waits for another thread. Checkpoints, which copy the WAL into the database and sync it (seconds of
I/O with the GIL released), stay in a thread of their own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from typing import Any

from common import json_codec

log = logging.getLogger("reference_service")

#: Back-off between retries of a batch that could not be committed.
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
CHECKPOINT_SECONDS = 1.0
#: How long a request waits for its writes before it is refused with 503 (while the database refuses them).
COMMIT_TIMEOUT = 30.0
FAILING_TIMEOUT = 5.0


class AsJson:
    """A document to store as JSON, encoded when its batch is committed rather than when it was saved (a
    document saved twice in one turn of the loop is encoded twice at most, never for nothing). The document
    must not change after it is submitted: the store submits its own copies, which it replaces, never changes."""

    __slots__ = ("doc",)

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def encode(self) -> str:
        return json_codec.dumps(self.doc)


class _Syncer:
    """Makes committed batches durable: an fdatasync of the WAL in a thread of its own, one for every commit
    made meanwhile (a group sync), and only then the requests waiting for them are answered.

    SQLite's ``synchronous=FULL`` would sync inside each COMMIT, on the event loop's thread (5.4 ms a commit
    on this machine, 0.17 ms without): the loop stalls; here it goes on serving while the disk syncs. A commit
    in WAL mode is in the WAL file once COMMIT returns; syncing that file is what makes it survive a power cut
    (checkpoints sync the WAL before they copy it, and the database after).
    """

    def __init__(self, wal: str | None) -> None:
        self.wal = wal  # None: a database in memory, nothing to sync
        self.synced = 0
        self.error: str | None = None
        self._wanted = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="store-sync", daemon=True)
        self._thread.start()

    def request(self, upto: int, waiters: list[tuple[int, asyncio.Future[None]]],
                loop: asyncio.AbstractEventLoop) -> None:
        with self._cond:
            self._wanted = max(self._wanted, upto)
            self._waiters += waiters
            self._loop = loop
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted <= self.synced and not self._stopping:
                    self._cond.wait()
                if self._wanted <= self.synced:
                    return
                target, waiting, self._waiters, loop = self._wanted, self._waiters, [], self._loop
            try:
                if self.wal is not None:
                    fd = os.open(self.wal, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        os.fdatasync(fd)
                    finally:
                        os.close(fd)
            except OSError as exc:
                self.error = f"the database's log cannot be synced to disk: {exc.strerror or exc}"
                log.error("%s", self.error)
            else:
                self.error = None
                self.synced = target
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(_settle, [f for _, f in waiting], self.error)
            if self.error is not None:
                self._stop_wait(1.0)

    def _stop_wait(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, timeout=seconds)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)


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
        self._lock = threading.Lock()
        self._queue: list[tuple[str, tuple[Any, ...]]] = []
        self.enqueued = 0
        self.done = 0
        self.error: str | None = None
        self._failures = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: The loop the commits are scheduled on (the first that submitted or waited), and whether one is.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, args=(path,), name="store-checkpoint",
                                              daemon=True)
        self._checkpointer.start()
        self._syncer = _Syncer(None if path.startswith("file:") or path == ":memory:" else path + "-wal")

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
        """A statement run at once, before anything is queued (schema and migrations)."""
        with self._lock:
            self._db.executescript(sql) if not args else self._db.execute(sql, args)

    def submit(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            self._queue.append((sql, args))
            self.enqueued += 1
            enqueued = self.enqueued
        self._schedule()
        return enqueued

    def _schedule(self, delay: float = 0.0) -> None:
        """A commit at the end of this turn of the loop (or after ``delay``, a retry's back-off): every write
        submitted meanwhile goes into the same transaction. Without a running loop the writes wait for
        ``flush``."""
        if self._scheduled:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else running
        if loop is None:
            return
        self._loop = loop
        self._scheduled = True
        if running is not loop:  # a thread other than the loop's
            loop.call_soon_threadsafe(self._commit_later)
        elif delay > 0:
            loop.call_later(delay, self._commit_later)
        else:
            loop.call_soon(self._commit_later)

    def _commit_later(self) -> None:
        self._scheduled = False
        if not self._commit_pending() and self._queue:
            self._schedule(RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1])

    def _commit_pending(self) -> bool:
        """Commit what is queued; False (and the waiters told why) when SQLite refused it, which is kept."""
        with self._lock:
            batch, self._queue = self._queue, []
            upto = self.enqueued
            if not batch:
                return True
            try:
                self._commit(batch)
            except sqlite3.Error as exc:
                self._failures += 1
                self.error = f"the database cannot be written: {exc}"
                self._queue[:0] = batch  # kept, in order, for the retry
                waiting, self._waiters = self._waiters, []
                error: str | None = self.error
                log.error("%s (%d statements waiting; retrying)", self.error, len(self._queue))
            else:
                self._failures = 0
                self.error = error = None
                self.done = upto
                waiting = [w for w in self._waiters if w[0] <= upto]
                if waiting:
                    self._waiters = [w for w in self._waiters if w[0] > upto]
        if error is None and waiting and self._loop is not None:
            self._syncer.request(upto, waiting, self._loop)  # answered once the WAL is on disk
        else:
            _settle([f for _, f in waiting], error)
        return error is None

    def flush(self) -> None:
        """Commit everything submitted so far, now (synchronous code, and reads that must see their writes)."""
        if self.done >= self.enqueued:
            return
        if not self._commit_pending():
            raise StoreUnavailable(self.error or "the database cannot be written")

    async def committed(self) -> None:
        """Wait (on the event loop) until everything submitted so far is committed and synced to disk."""
        loop = asyncio.get_running_loop()
        target = self.enqueued
        if self._syncer.synced >= target:
            return
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            committed = self.done >= target
            if not committed:
                self._waiters.append((target, future))
            failing = self.error is not None or self._syncer.error is not None
        if committed:
            self._loop = self._loop or loop
            self._syncer.request(target, [(target, future)], loop)
        else:
            self._schedule()
        timeout = FAILING_TIMEOUT if failing else COMMIT_TIMEOUT
        timer = loop.call_later(timeout, lambda: _settle(
            [future], self.error or f"the database did not commit within {timeout:g} s"))
        try:
            await future
        finally:
            timer.cancel()

    def close(self) -> None:
        try:
            self._commit_pending()
        finally:
            self._stop.set()
            self._syncer.close()
            self._checkpointer.join(timeout=30)
            with self._lock:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
                self._db.close()

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


def _settle(futures: list[asyncio.Future[None]], error: str | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(StoreUnavailable(error))
