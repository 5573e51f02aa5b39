"""The daemon's side of the fork server (``agent.fork_server``): start it, ask it for step processes, restart it.

The server is started on demand and again whenever it has ended (killed, crashed, out of memory): a step asked
for meanwhile waits for the new one, so no instruction is lost; steps that were running in a server that ended
died with it (their own ``PR_SET_PDEATHSIG``) and :class:`agent.runner.StepRunner` runs them again. The daemon
never imports step code: the server is a separate interpreter, and what comes back from it is a pid, a pipe
and, once the step process has been reaped, its exit status.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from agent.step_env import FORK_SERVER_FD, MAX_PACKET

log = logging.getLogger("agent")

#: Seconds the server gets to import the step framework and say it is ready (a TCG guest is slow).
START_TIMEOUT = 120.0
#: Seconds a fork may take once the server is ready.
FORK_TIMEOUT = 30.0


class ForkServerGone(Exception):
    """The fork server ended before it could answer; a new one is started by the next request."""


@dataclass
class Spawned:
    """A step process started by the server: its pid, its result channel and which server started it."""

    pid: int
    ident: int
    channel: IO[str]
    server: _Server


class _Server:
    """One life of the fork server process and the thread that reads what it says."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.cond = threading.Condition()
        self.gone = False
        self.ready = False
        self.stopping = False
        self.pids: dict[int, int | str] = {}  # request id -> pid, or why it failed
        self.exits: dict[int, int] = {}  # request id -> exit status
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "agent.fork_server"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), env={**env, FORK_SERVER_FD: str(theirs.fileno())})
        finally:
            theirs.close()
        threading.Thread(target=self._read, name="fork-server", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_PACKET)
            except OSError:
                data = b""
            if not data:
                break
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            with self.cond:
                if "ready" in msg:
                    self.ready = True
                elif "status" in msg and "id" in msg:
                    self.exits[int(msg["id"])] = int(msg["status"])
                elif "id" in msg:
                    self.pids[int(msg["id"])] = int(msg["pid"]) if "pid" in msg else str(msg.get("error"))
                self.cond.notify_all()
        status = self.proc.wait()
        with self.cond:
            self.gone = True
            self.cond.notify_all()
        if not self.stopping:
            log.warning("the fork server (pid %d) ended with status %d; a new one starts with the next step",
                        self.proc.pid, status)

    def wait_ready(self) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.ready or self.gone, START_TIMEOUT) or self.gone:
                raise ForkServerGone("the fork server did not start")

    def request(self, ident: int, fds: list[int]) -> int:
        """Send one request's two pipe ends; the pid of the step process the server forked."""
        try:
            socket.send_fds(self.sock, [json.dumps({"id": ident}).encode()], fds)
        except OSError as exc:
            raise ForkServerGone(f"cannot reach the fork server: {exc}") from exc
        with self.cond:
            self.cond.wait_for(lambda: ident in self.pids or self.gone, FORK_TIMEOUT)
            answer = self.pids.pop(ident, None)
        if isinstance(answer, int):
            return answer
        raise ForkServerGone(answer or "the fork server did not answer")

    def exit_status(self, ident: int, timeout: float) -> int | None:
        """The step's exit status once the server has reaped it; None if the server ended first."""
        with self.cond:
            self.cond.wait_for(lambda: ident in self.exits or self.gone, timeout)
            return self.exits.pop(ident, None)

    def stop(self) -> None:
        self.stopping = True
        self.sock.shutdown(socket.SHUT_RDWR)  # the server ends when its socket closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ForkServer:
    """The daemon's handle on its fork server: thread-safe, restarts the server when it has ended."""

    def __init__(self, env: dict[str, str], *, python: str = sys.executable) -> None:
        self.env = env
        self.python = python
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._next_id = 0

    def start(self) -> None:
        """Start the server now, without waiting for it (the first step then finds it warm)."""
        with self._lock:
            self._current()

    def _current(self) -> _Server:
        if self._server is None or self._server.gone:
            self._server = _Server(self.python, {**self.env, "PYTHONUNBUFFERED": "1"})
        return self._server

    def pid(self) -> int | None:
        server = self._server
        return server.proc.pid if server is not None and not server.gone else None

    def spawn(self, request: dict[str, Any], env: dict[str, str]) -> Spawned:
        """A new step process running ``request`` with ``env``; ForkServerGone if no server can start it."""
        with self._lock:
            server = self._current()
            self._next_id += 1
            ident = self._next_id
        server.wait_ready()
        req_r, req_w = os.pipe2(os.O_CLOEXEC)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = server.request(ident, [req_r, res_w])
        except BaseException:
            for fd in (req_w, res_r):
                os.close(fd)
            raise
        finally:
            for fd in (req_r, res_w):
                os.close(fd)
        try:
            with os.fdopen(req_w, "wb") as stream:
                stream.write(json.dumps({"request": request, "env": env}).encode())
        except OSError:
            pass  # the child died before reading: its result channel says so
        return Spawned(pid, ident, os.fdopen(res_r, "r", encoding="utf-8"), server)

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None and not server.gone:
            server.stop()


def wait_exit(spawned: Spawned, timeout: float = 10.0) -> int | None:
    """How the step process ended (``Popen.returncode`` style); None when its server ended before telling."""
    deadline = time.monotonic() + timeout
    return spawned.server.exit_status(spawned.ident, max(0.0, deadline - time.monotonic()))
