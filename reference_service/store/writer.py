"""The store's writes: queued statements committed in batches, a group commit once per turn of the event loop,
so that a hundred polls a second cost a few commits a second, not a hundred.

A request that must be durable before it is answered (a step reply, a registration: anything acknowledged)
waits with :meth:`Writer.committed` until the batch holding its writes is committed and its WAL synced to disk,
so what was acknowledged survives a kill -9 and a power cut. A failed batch (the disk is full, say) is kept and
retried with back-off, and the waiters are told why, so a reply is refused with a clear message rather than
acknowledged and lost.

Where the commits run: a database on disk is written by a process of its own (``store.committer``), never by
the event loop's thread, whose every write to a frozen filesystem blocked the whole service until it thawed; a
thread would wait for the GIL behind the busy loop once per statement (docs/scale.md). The loop only pickles a
turn's batch onto a socket and reads, in its own poll, when it is committed and synced; while a batch waits
longer than ``STUCK_SECONDS``, :meth:`Writer.stuck` says so (``/healthz``). A database in memory has no disk to
wait for: its batches are committed on the loop. Checkpoints, which copy the WAL into the database and sync it
(seconds of I/O with the GIL released), run in a thread of their own.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import deque
from typing import Any

from reference_service.store import committer
from reference_service.store.committer import RETRY_SECONDS, AsJson, Frames, frame

log = logging.getLogger("reference_service")

CHECKPOINT_SECONDS = 1.0
#: How long a request waits for its writes before it is refused with 503 (while the database refuses them,
#: or its disk is stuck).
COMMIT_TIMEOUT = 30.0
FAILING_TIMEOUT = 5.0
#: A batch not on disk after this long: the storage is stuck (``/healthz`` says so; new waits are short).
STUCK_SECONDS = 2.0
#: How long a history read on the event loop's thread (which must see its writes) waits for a commit.
FLUSH_TIMEOUT = 1.0
#: A committing process that dies is replaced, unless it had run less than this long (it cannot work).
RESTART_SECONDS = 5.0


class StoreUnavailable(Exception):
    """The database could not be written; carries SQLite's reason."""


def _in_memory(path: str) -> bool:
    return path.startswith("file:") or path == ":memory:"


class Writer:
    def __init__(self, path: str, *, sync: bool = True) -> None:
        self.path = path
        self._sync = sync  # False: committed is enough (--db-sync off)
        self._db = committer.connect(path)  # the schema's statements, and a database in memory's commits
        self._lock = threading.RLock()
        self._queue: list[tuple[str, tuple[Any, ...]]] = []
        self.enqueued = 0
        #: Statements committed (visible to readers) and synced to disk, as the committing process said.
        self.done = 0
        self.synced = 0
        self.error: str | None = None
        self._failures = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Batches handed over and not yet committed / not yet synced: (upto, when).
        self._uncommitted: deque[tuple[int, float]] = deque()
        self._unsynced: deque[tuple[int, float]] = deque()
        #: The loop the commits are scheduled on (the first that submitted or waited), and whether one is.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, args=(path,), name="store-checkpoint",
                                              daemon=True)
        self._checkpointer.start()
        self._out = bytearray()
        self._frames = Frames()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._watched: asyncio.AbstractEventLoop | None = None
        #: Why the committing process is gone for good (it died within RESTART_SECONDS of its start).
        self._gone: str | None = None
        #: Frames handed over and not reported committed: sent again to a replacement (``committer``).
        self._sent: deque[tuple[int, bytes]] = deque()
        self._run = uuid.uuid4().hex
        self._started = 0.0
        if not _in_memory(path):
            self._start_committer()

    def _start_committer(self) -> None:
        self._proc, self._sock = committer.spawn(self.path, self._run, self._sync)
        self._frames = Frames()
        self._started = time.monotonic()

    def _restart_committer(self, reason: str) -> bool:
        """A new committing process for one that died, sent every batch not reported committed; False when
        the last one died within RESTART_SECONDS of its start (then writes are refused, as they cannot be made)."""
        if self._sock is None or time.monotonic() - self._started < RESTART_SECONDS:
            return False
        log.error("%s: starting another", reason)
        self._sock.close()
        if self._proc is not None:
            committer.reap(self._proc)
        self._start_committer()
        self._out = bytearray(b"".join(data for _, data in self._sent))
        self._pump()
        return True

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
        """A statement run at once, before anything is queued (schema and migrations, at start)."""
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
        """Hand what is queued to the committing process (or commit it, in memory); False (and the waiters
        told why) when SQLite refused it, which is kept."""
        with self._lock:
            batch, self._queue = self._queue, []
            upto = self.enqueued
            if not batch:
                return True
            encoded = [(sql, tuple(a.encode() if isinstance(a, AsJson) else a for a in args)) for sql, args in batch]
            if self._gone:
                self._queue[:0] = batch
                waiting, self._waiters = self._waiters, []
                _settle([f for _, f in waiting], self._gone)
                return False
            if self._sock is not None:
                now = time.monotonic()
                data = frame((upto, encoded))
                self._sent.append((upto, data))
                self._out += data
                self._uncommitted.append((upto, now))
                self._unsynced.append((upto, now))
                self._pump()
                return True
            try:
                committer.commit(self._db, encoded)
            except sqlite3.Error as exc:
                self._failures += 1
                self.error = f"the database cannot be written: {exc}"
                self._queue[:0] = batch  # kept, in order, for the retry
                waiting, self._waiters = self._waiters, []
                log.error("%s (%d statements waiting; retrying)", self.error, len(self._queue))
                _settle([f for _, f in waiting], self.error)
                return False
            self._failures = 0
            self.error = None
            self.done = self.synced = upto
            waiting = [w for w in self._waiters if w[0] <= upto]
            self._waiters = [w for w in self._waiters if w[0] > upto]
        _settle([f for _, f in waiting], None)
        return True

    # -- the committing process's socket ---------------------------------------------------------------
    def _watch(self) -> None:
        """Read the process's answers in the loop's own poll (no thread to hand them over)."""
        loop = self._loop
        if self._sock is None or loop is None or loop is self._watched or loop.is_closed():
            return
        loop.add_reader(self._sock.fileno(), self._receive)
        self._watched = loop

    def _pump(self) -> None:
        """Send what fits in the socket now; the rest when it can be sent (never blocking the loop)."""
        assert self._sock is not None
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lost(f"the store's committing process is gone ({exc})")
                return
            del self._out[:sent]
        self._watch()
        loop = self._watched
        if loop is not None and not loop.is_closed():
            if self._out:
                loop.add_writer(self._sock.fileno(), self._send_rest)
            else:
                loop.remove_writer(self._sock.fileno())

    def _send_rest(self) -> None:
        with self._lock:
            self._pump()

    def _receive(self) -> None:
        with self._lock:
            assert self._sock is not None
            while True:
                try:
                    data = self._sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._lost("the store's committing process is gone")
                    break
                for kind, value in self._frames.feed(data):
                    self._told(kind, value)

    def _told(self, kind: str, value: Any) -> None:
        if kind == "c":
            self.done = value
            while self._uncommitted and self._uncommitted[0][0] <= value:
                self._uncommitted.popleft()
            while self._sent and self._sent[0][0] <= value:
                self._sent.popleft()
            return
        if kind == "e":
            self.error = value
            log.error("%s (retrying)", value)
            waiting, self._waiters = self._waiters, []
            _settle([f for _, f in waiting], value)
            return
        self.synced, self.error = value, None
        while self._unsynced and self._unsynced[0][0] <= value:
            self._unsynced.popleft()
        waiting = [w for w in self._waiters if w[0] <= value]
        self._waiters = [w for w in self._waiters if w[0] > value]
        _settle([f for _, f in waiting], None)

    def _lost(self, reason: str) -> None:
        if self._watched is not None and self._sock is not None and not self._watched.is_closed():
            self._watched.remove_reader(self._sock.fileno())
            self._watched.remove_writer(self._sock.fileno())
        self._watched = None
        if self._restart_committer(reason):
            return
        self.error = self._gone = reason
        log.error("%s", reason)
        waiting, self._waiters = self._waiters, []
        _settle([f for _, f in waiting], reason)

    # -- waiting for writes --------------------------------------------------------------------------------
    def stuck(self) -> str | None:
        """Why the storage cannot take writes now (a batch waiting longer than STUCK_SECONDS, or an error)."""
        with self._lock:
            oldest = self._unsynced[0][1] if self._unsynced else None
            error = self.error
        if oldest is not None and time.monotonic() - oldest > STUCK_SECONDS:
            waited = time.monotonic() - oldest
            return (f"a write has waited {waited:.0f} s for the database's disk (a frozen or stuck filesystem?)"
                    + (f": {error}" if error else ""))
        return error

    def flush(self) -> None:
        """Commit everything submitted so far, now (synchronous code, and reads that must see their writes).
        On the event loop's thread it waits FLUSH_TIMEOUT at most, and not at all while a batch handed over
        earlier has waited that long already: a stuck disk makes it raise StoreUnavailable, not hold the loop."""
        if self.done >= self.enqueued:
            return
        try:
            asyncio.get_running_loop()
            limit = FLUSH_TIMEOUT
        except RuntimeError:
            limit = COMMIT_TIMEOUT
        with self._lock:
            target = self.enqueued
            if not self._commit_pending():
                raise StoreUnavailable(self.error or "the database cannot be written")
            if self._sock is None or self.done >= target:
                return
            now = time.monotonic()
            waited = now - self._uncommitted[0][1] if self._uncommitted else 0.0
            deadline = now + limit if waited < limit else now
            while self.done < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._gone:
                    raise StoreUnavailable(self.stuck() or f"the database did not commit within {limit:g} s")
                select.select([self._sock], [self._sock] if self._out else [], [], left)
                self._pump()
                self._receive()

    async def committed(self) -> None:
        """Wait (on the event loop) until everything submitted so far is committed and synced to disk."""
        loop = asyncio.get_running_loop()
        with self._lock:
            target = self.enqueued
            if self.synced >= target:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((target, future))
            failing = self.error is not None
        self._loop = self._loop or loop
        self._schedule()
        self._watch()
        timeout = FAILING_TIMEOUT if failing or self.stuck() else COMMIT_TIMEOUT
        timer = loop.call_later(timeout, lambda: _settle(
            [future], self.stuck() or self.error or f"the database did not commit within {timeout:g} s"))
        try:
            await future
        finally:
            timer.cancel()

    def close(self) -> None:
        try:
            self.flush_all()
        finally:
            self._stop.set()
            self._checkpointer.join(timeout=30)
            with self._lock:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
                self._db.close()

    def flush_all(self) -> None:
        """Everything submitted committed and synced, and the committing process ended (at close)."""
        with self._lock:
            self._commit_pending()
            sock, proc, self._sock, self._proc = self._sock, self._proc, None, None
            if sock is None or proc is None:
                return
            if self._watched is not None and not self._watched.is_closed():
                self._watched.remove_reader(sock.fileno())
                self._watched.remove_writer(sock.fileno())
            self._watched = None
            sock.settimeout(60)
            try:
                sock.sendall(self._out)
                sock.shutdown(socket.SHUT_WR)  # the process commits and syncs what it got, then exits
                while data := sock.recv(1 << 16):
                    for kind, value in self._frames.feed(data):
                        self._told(kind, value)
            except OSError as exc:
                log.error("the store's committing process is gone: %s", exc)
            finally:
                sock.close()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _settle(futures: list[asyncio.Future[None]], error: str | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(StoreUnavailable(error))
