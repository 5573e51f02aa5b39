"""The daemon's state directory (the ``state_dir`` setting, ``AGENT_STATE_DIR``): what it keeps there
and how, and the leftovers of a previous life it cleans up on start.

Replies can hold pull secrets and ignition tokens, so the directory is 0700 and every file in it 0600, whatever
the umask. The step history is bounded: past ``HISTORY_MAX_BYTES`` it is rotated to ``history.jsonl.1``, and
each entry's output is clipped, so at most about twice the bound is ever on disk.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import threading
import time

from agent.step_env import MARK_ENV
from common.errors import StateLocked
from common.lazy_log import LazyLogger
from common.limits import HISTORY_MAX_BYTES, HISTORY_MAX_OUTPUT_CHARS, clip

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from pathlib import Path

    from agent.runner import Reply  # the step machinery is not loaded by the lock taken at start (agent.lifecycle)

log = LazyLogger("agent")

def write_private(path: Path, text: str, *, append: bool = False) -> int:
    """Write (or append) ``text`` to a 0600 file in a 0700 directory; returns the file's size after."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    # O_NOFOLLOW: a symlink put in place of a state file would make the agent write (and chmod) its target
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


class History:
    """Recent step replies for logs-gather; best effort, bounded, private."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / "history.jsonl" if directory else None
        self._lock = threading.Lock()

    def record(self, reply: Reply) -> None:
        if self.path is None:
            return
        wire = reply.to_wire()
        if "output" in wire:
            wire["output"] = clip(wire["output"], HISTORY_MAX_OUTPUT_CHARS)
        line = json.dumps({"time": time.time(), **wire}) + "\n"
        try:
            with self._lock:
                if write_private(self.path, line, append=True) > HISTORY_MAX_BYTES:
                    self.path.replace(self.path.with_name(self.path.name + ".1"))
        except OSError as exc:
            log.warning("step history disabled: cannot write %s: %s", self.path, exc.strerror or exc)
            self.path = None


class StateLock:
    """The state directory's ``agent.lock``, held (flock) for the agent's life: one agent per directory.

    A second agent on the same directory would otherwise take the first one's running steps for a previous
    life's leftovers and kill them (a killed write-image leaves a half-written disk). The kernel drops the
    lock when the holder dies, however it dies, so a stale lock file never blocks a restart.
    """

    NAME = "agent.lock"

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls, directory: str | os.PathLike[str]) -> StateLock:
        """Taken before the first register: os.path, not pathlib, which that way does not need."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, cls.NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StateLocked(
                f"another agent (pid {holder or '?'}) is running with the state directory {directory}",
                hint="stop it first, or give this one its own AGENT_STATE_DIR") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def reap_leftovers(mark: str) -> int:
    """Kill processes a previous life of this daemon (same state directory) left running; how many.

    Every step process, and all it starts, carries ``ASSISTED_AGENT_STEP_OF=<state dir>`` in its environment,
    which survives re-parenting and ``setsid()``: the mark is how they are found once their parent is gone.
    Read from /proc, not with psutil: the daemon stays resident for hours and psutil would weigh on every one
    of them (issue 29: memory between polls). Each process is held by a pidfd while its environment is read
    and it is signalled, so a pid reused meanwhile is never killed.
    """
    if not mark:
        return 0
    wanted = f"{MARK_ENV}={mark}".encode()
    me = os.getpid()
    killed: list[tuple[int, int]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            fd = os.pidfd_open(int(entry))
        except OSError:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as stream:
                env = stream.read().split(b"\0")
            if wanted in env and not select.select([fd], [], [], 0)[0]:  # alive: the environment was its own
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append((int(entry), fd))
                continue
        except OSError:
            pass
        os.close(fd)
    deadline = time.monotonic() + 5
    waiting = [fd for _, fd in killed]
    while waiting and time.monotonic() < deadline:  # a pidfd is readable once its process has ended
        done = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))[0]
        waiting = [fd for fd in waiting if fd not in done]
    for _, fd in killed:
        os.close(fd)
    if killed:
        log.warning("killed %d process(es) a previous run of the agent left behind: %s", len(killed),
                    ", ".join(str(pid) for pid, _ in killed))
    return len(killed)
