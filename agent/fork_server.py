"""The warm process steps are forked from: ``python -m agent.fork_server`` (started by ``agent.forks``).

A fresh interpreter spends about 0.15 s of CPU importing the step framework before a step does a few
milliseconds of work; on a host that polls for hours, or one emulated without KVM, that is the agent's main
cost. This process imports the framework once (``agent.step_process`` and what it needs; each request names its
plugin's entry point) and then forks one child per step, so a step costs a fork and its own work. What the child does is
what a fresh ``agent.step_process`` does: a new session, the request's environment, its own logging, the
result as JSON lines on a pipe the daemon handed over with the request; it never returns into this loop.

The daemon talks to this process over a Unix socket (fd ``FORK_SERVER_FD``), one JSON document per packet
(``SOCK_SEQPACKET``):

- daemon -> server: ``{"id": N}`` with two pipe ends attached (SCM_RIGHTS): the read end of the step's request
  (``{"request": {...}, "env": {...}}``, written by the daemon, read by the child: it can be of any size) and the
  write end of its result channel; the server answers ``{"id": N, "pid": P}`` (or ``{"id": N, "error": ...}``).
- server -> daemon: ``{"id": N, "pid": P, "status": S}`` once a step process has been reaped (S as ``Popen.returncode``:
  negative for a signal). Only this process can reap its children, so only it can say how they ended.

This process is single-threaded (forking a threaded process is unsafe), ends when its socket closes, and dies
with the daemon (the daemon's pidfd is in the same ``select``). Each step dies with this process in turn (its
own ``PR_SET_PDEATHSIG``; the server's one thread is the one that forked it): the daemon notices, starts a new
server and runs again the steps that had not reported, so no instruction is lost.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
from typing import Any

from agent import step_process
from agent.step_env import FORK_SERVER_FD, MAX_PACKET, PARENT_ENV

PR_SET_NAME = 15


class Server:
    def __init__(self, sock: socket.socket, parent: int) -> None:
        self.sock = sock
        self.parent = parent
        self.ids: dict[int, int] = {}  # pid of a running step -> the id of its request

    def serve(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the select through the wakeup fd
        try:
            parent_fd = os.pidfd_open(self.parent)
        except OSError:
            parent_fd = -1
        watched = [self.sock.fileno(), wake_r] + ([parent_fd] if parent_fd >= 0 else [])
        poll = None if parent_fd >= 0 else 1.0  # no pidfd (Linux < 5.3): look at the parent every second
        self._send({"ready": os.getpid()})
        while True:
            readable, _, _ = select.select(watched, [], [], poll)
            if parent_fd in readable or os.getppid() != self.parent:
                return  # the daemon died: the steps die with this process (their PR_SET_PDEATHSIG)
            if wake_r in readable:
                _drain(wake_r)
            self._reap()
            if self.sock.fileno() in readable and not self._receive():
                return

    def _receive(self) -> bool:
        """Start the step one packet asks for; False once the daemon closed the socket."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_PACKET, 4)
        except InterruptedError:
            return True
        if not data and not fds:
            return False
        try:
            ident = json.loads(data)["id"]
        except (ValueError, KeyError, TypeError):
            ident = None
        if ident is None or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            if ident is not None:
                self._send({"id": ident, "error": "a request needs its two pipes"})
            return True
        server = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            self._send({"id": ident, "error": f"fork failed: {exc}"})
            pid = -1
        if pid == 0:
            self._child(server, fds[0], fds[1])  # never returns
        for fd in fds:
            os.close(fd)
        if pid > 0:
            self.ids[pid] = ident
            self._send({"id": ident, "pid": pid})
        return True

    def _child(self, server: int, request_fd: int, result_fd: int) -> None:
        status = 70  # EX_SOFTWARE: the child failed before it could run its step
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.sock.close()
            os.setsid()
            # the step dies with this server, and the server with the daemon; the step watches the daemon too
            step_process.die_with_parent(server, watch=self.parent)
            with os.fdopen(request_fd, "rb") as stream:
                message = json.loads(stream.read())
            env = message.get("env")
            if isinstance(env, dict):
                os.environ.clear()
                os.environ.update({str(k): str(v) for k, v in env.items()})
            request = message.get("request") or {}
            _name(f"step {request.get('step_type', '')}")
            status = step_process.serve_request(request, os.fdopen(result_fd, "w", encoding="utf-8"))
        except BaseException:  # whatever happens, this child must not return into the server's loop
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.ids:
                self._send({"id": self.ids.pop(pid), "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.sock.send(json.dumps(message).encode())
        except OSError:
            pass  # the daemon is gone; the select loop notices


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 512):
                return
        except BlockingIOError:
            return


def _name(text: str) -> None:
    """The process's name in ps/top (``comm``), so a step is told apart from the server it was forked from."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_NAME, text.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def warm() -> None:
    """What most steps need, loaded once here instead of in each step. Not the plugin list: the daemon sends
    each step's entry point (importlib.metadata would weigh 4 MiB here, psutil 2.5: steps import them if they
    need them)."""
    import subprocess  # noqa: F401  - most steps run a command (ipaddress is left to those that need it)


def settle() -> None:
    """Once warm, before the first fork: every step is a copy of this process, and it stays resident.

    ``gc.freeze()``: a collection in a step would write to the header of every object it inherited and so copy
    every page holding one (a few MiB, and their page faults on each step's CPU); frozen, they are never
    scanned. ``malloc_trim``: what the imports allocated and freed goes back to the kernel instead of staying
    in this process's heap between polls (glibc; elsewhere nothing to do)."""
    import ctypes
    import gc

    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def main() -> int:
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    fd = int(os.environ.pop(FORK_SERVER_FD, "-1"))
    if parent <= 0 or fd < 0:
        print("agent.fork_server is started by the agent daemon, not by hand", file=sys.stderr)
        return 2
    # No PR_SET_PDEATHSIG here: it fires when the daemon's *thread* that started this process ends, and a
    # server restarted from a step's thread would die with that thread. The daemon's pidfd in the select loop
    # ends this process when the daemon dies, however it dies.
    # A terminal's Ctrl-C or a signal to the daemon's process group is the daemon's to handle (it lets running
    # steps finish, then closes our socket); we end with the socket, or with the daemon.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent:
        return 0  # the daemon is already gone
    _name("agent forks")
    warm()
    settle()
    sock = socket.socket(fileno=fd)
    Server(sock, parent).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
