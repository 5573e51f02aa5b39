"""The process that commits the store's writes and syncs them to disk, so the service's event loop never makes a
system call that writes to the database's filesystem.

Why a process (issue 26): a write to a frozen filesystem (``fsfreeze``, a snapshot, a stuck network disk) blocks
in the kernel until the filesystem thaws, uninterruptibly. With commits on the loop (docs/scale.md says why they
were there), a 10 s freeze stopped every request for 10 s, ``/healthz`` included. In a thread, the commits would
wait for the GIL behind the busy loop once per statement (what docs/scale.md measured: 0.1 to 0.5 s a commit at
1,000 hosts). A process has its own GIL: the loop hands it a batch over a socket (a non-blocking send), and learns
from the socket, in the loop's own poll, when the batch is committed and when it is on disk.

Group commit: everything that arrived while the previous batch was synced is committed in one transaction and
synced with one ``fdatasync`` of the WAL. In WAL mode a commit is in the WAL file once COMMIT returns (visible
to the service's readers, survives a kill -9); the sync is what makes it survive a power cut.

Frames, both ways: a 4-byte big-endian length and a pickle. To the process: ``(upto, [(sql, args), ...])``,
``upto`` counting the statements submitted so far. Back: ``("c", upto)`` committed, ``("s", upto)`` synced,
``("e", reason)`` a commit or a sync failed (the batch is kept and retried with back-off). The process exits
once the socket is closed and what it got is committed and synced. With ``--no-sync`` (the service's
``--db-sync off``) a commit is reported synced at once: it survives a kill -9, not a power cut.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time
from typing import Any

#: Back-off between retries of a batch (or a sync) that failed.
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
_HEAD = struct.Struct(">I")


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(data)) + data


class Frames:
    """Frames out of a byte stream read in pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out = []
        while len(self._buf) >= _HEAD.size:
            (size,) = _HEAD.unpack_from(self._buf)
            if len(self._buf) < _HEAD.size + size:
                break
            out.append(pickle.loads(self._buf[_HEAD.size:_HEAD.size + size]))
            del self._buf[:_HEAD.size + size]
        return out


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, uri=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    # Checkpoints move the WAL into the database: the service's thread of its own does them (PASSIVE, never
    # blocking a commit), not the commit that crosses the threshold, which then took up to a second.
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def commit(db: sqlite3.Connection, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
    db.execute("BEGIN")
    try:
        for sql, args in batch:
            db.execute(sql, args)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def sync(path: str) -> None:
    """fdatasync of the database's WAL, where every commit is."""
    try:
        fd = os.open(path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # nothing committed through a WAL yet
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _sync_directory(path: str) -> None:
    """The WAL's name made durable once (a file created since the last sync of its directory may vanish at a
    power cut with everything synced into it)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Committer:
    """The process's loops: the main thread reads batches, commits all that came and says so; a thread of its
    own syncs the WAL up to the last commit and says so. A commit never waits for a sync in progress (an fsync
    on a busy disk takes seconds), so what readers wait for (committed) is not held up by what acknowledgements
    wait for (synced)."""

    def __init__(self, path: str, sock: socket.socket, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.sock = sock
        self.db = connect(path)
        self.frames = Frames()
        self.pending: list[tuple[int, list[tuple[str, tuple[Any, ...]]]]] = []
        self.committed = self.synced = 0
        self.failures = 0
        self.eof = False
        #: A failure once the service closed the socket: nobody waits for a retry (the service is stopping).
        self.giving_up = False
        self.closing = False
        self._cond = threading.Condition()
        self._say_lock = threading.Lock()

    def run(self) -> None:
        syncer = threading.Thread(target=self._syncs, name="store-sync", daemon=True)
        syncer.start()
        while not (self.eof and not self.pending) and not self.giving_up:
            wait = RETRY_SECONDS[min(self.failures, len(RETRY_SECONDS)) - 1] if self.failures else 0.0
            self._read(wait if self.pending else None)
            if self.pending:
                self._commit()
        with self._cond:
            self.closing = True
            self._cond.notify()
        syncer.join()
        self.db.close()

    def _read(self, timeout: float | None) -> None:
        """Whatever the service sent, waiting up to ``timeout`` (None: until something comes)."""
        if self.eof:
            if timeout:
                time.sleep(timeout)
            return
        ready, _, _ = select.select([self.sock], [], [], timeout)
        while ready:
            data = self.sock.recv(1 << 20)
            if not data:
                self.eof = True
                return
            self.pending += self.frames.feed(data)
            ready, _, _ = select.select([self.sock], [], [], 0)

    def _commit(self) -> None:
        batch = [statement for _, statements in self.pending for statement in statements]
        try:
            commit(self.db, batch)
        except sqlite3.Error as exc:
            self._failed(f"the database cannot be written: {exc}")
            return
        self.failures = 0
        upto = self.pending[-1][0]
        self.pending = []
        self._say(("c", upto))
        with self._cond:
            self.committed = upto
            self._cond.notify()

    def _syncs(self) -> None:
        directory_synced = False
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self.committed > self.synced or self.closing)
                if self.committed <= self.synced:
                    return
                target = self.committed
            try:
                if self.durable:
                    sync(self.path)
                if self.durable and not directory_synced:
                    _sync_directory(self.path)
                    directory_synced = True
            except OSError as exc:
                self._failed(f"the database's log cannot be synced to disk: {exc.strerror or exc}")
                if self.closing:
                    return
                time.sleep(1.0)
                continue
            self.synced = target
            self._say(("s", target))

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.giving_up = self.eof
        print(f"store: {reason} (retrying)", file=sys.stderr, flush=True)
        self._say(("e", reason))

    def _say(self, message: Any) -> None:
        try:
            with self._say_lock:
                self.sock.sendall(frame(message))
        except OSError:
            self.eof = True  # the service is gone: finish what it sent, tell nobody


def main(argv: list[str] | None = None) -> int:
    # A stop of the whole group (systemd's KillMode=control-group, Ctrl-C, a test's killpg) must not lose the
    # writes the service hands over as it stops: this process ends when the service closes its socket.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = argv if argv is not None else sys.argv[1:]
    Committer(args[0], socket.socket(fileno=int(args[1])), durable="--no-sync" not in args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
