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

A committer that dies is replaced by the service (``Writer``), which sends again every batch not reported
committed. So that none is committed twice, each transaction also records the ``upto`` it reached under the
writer's run token (``--run``, table ``commit_marks``); a new process of the same run starts from that mark,
reports it, and skips what it already holds.
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

# What only the service's side uses (spawn, reap, AsJson: subprocess, pathlib, orjson) is imported where it is
# used: this module is the committing process's whole program, whose RSS bench/scale.py counts with the
# service's, and those imports were 3 of its 17 MiB at start (docs/scale.md).

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


def spawn(path: str, run: str, durable: bool) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """This module's ``main`` in a process of its own, and the service's end of its socket (non-blocking)."""
    import subprocess
    from pathlib import Path

    mine, theirs = socket.socketpair()
    # -c, not -m: found from this file's tree whatever the service's sys.path and working directory were
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
            "from reference_service.store.committer import main; sys.exit(main())")
    with theirs:
        proc = subprocess.Popen([sys.executable, "-c", code, path, str(theirs.fileno()), f"--run={run}",
                                 *([] if durable else ["--no-sync"])], pass_fds=(theirs.fileno(),),
                                stdin=subprocess.DEVNULL)
    mine.setblocking(False)
    return proc, mine


class AsJson:
    """A document to store as JSON, encoded when its batch is handed over rather than when it was saved (a
    document saved twice in one turn of the loop is encoded twice at most, never for nothing). The document
    must not change after it is submitted: the store submits its own copies, which it replaces, never changes."""

    __slots__ = ("doc",)

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def encode(self) -> str:
        from common import json_codec

        return json_codec.dumps(self.doc)


def reap(proc: subprocess.Popen[bytes]) -> None:
    """Waits for a process whose socket closed (it is gone, or going)."""
    import subprocess

    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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

    def __init__(self, path: str, sock: socket.socket, *, durable: bool = True, run: str = "") -> None:
        self.path = path
        self.durable = durable
        self.sock = sock
        self.db = connect(path)
        self.run_token = run
        self.frames = Frames()
        self.pending: list[tuple[int, list[tuple[str, tuple[Any, ...]]]]] = []
        self.committed = self.synced = 0
        if run:  # (a replacement: what its predecessor committed, to be synced and reported, not committed again)
            self.db.execute("CREATE TABLE IF NOT EXISTS commit_marks (run TEXT PRIMARY KEY, upto INTEGER NOT NULL)")
            found = self.db.execute("SELECT upto FROM commit_marks WHERE run = ?", (run,)).fetchone()
            self.committed = int(found[0]) if found else 0
        self.failures = 0
        self.eof = False
        #: A failure once the service closed the socket: nobody waits for a retry (the service is stopping).
        self.giving_up = False
        self.closing = False
        self._cond = threading.Condition()
        self._say_lock = threading.Lock()

    def run(self) -> None:
        if self.committed:
            self._say(("c", self.committed))
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
        self.pending = [(upto, statements) for upto, statements in self.pending if upto > self.committed]
        if not self.pending:
            return
        batch = [statement for _, statements in self.pending for statement in statements]
        if self.run_token:
            batch.append(("INSERT OR REPLACE INTO commit_marks (run, upto) VALUES (?, ?)",
                          (self.run_token, self.pending[-1][0])))
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
    run = next((a.removeprefix("--run=") for a in args if a.startswith("--run=")), "")
    Committer(args[0], socket.socket(fileno=int(args[1])), durable="--no-sync" not in args, run=run).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
