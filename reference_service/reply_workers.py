"""Big step replies checked in a worker process, so that neither the event loop nor its GIL waits for them.

A 1,000-peer connectivity report (330 KB) takes about 8 ms of pure Python to decode and check against the
spec. On the loop that stalls every request; in a thread it holds the GIL the loop needs: at 1,000 hosts the
first 150 hosts' reports, checked by six threads, took the loop's requests from milliseconds to 0.4 s. The
worker process says why not, or hands the decoded reply back with what the rules derive from its output
(``documents.deriver``, and the report's reach for the cluster digest: 2 to 5 ms of the loop or of a thread for
that report, now a few kilobytes to unpickle). The loop decodes the output again (0.7 ms with orjson) only
for a step whose reply handler reads the document (``registry.reply_handler``'s ``text_only``).

The worker is started on the first big reply (a service of a few hosts never starts it); it is the service's
(``ReplyWorkers``), not this module's, and ends with it. It is one process serving one pipe: what it keeps
between reports (its rulebook, which peer addresses are in which network) is a :class:`Checker` its serving
function owns, not module state. It asks the kernel to end it with the service (``PR_SET_PDEATHSIG``), so a
kill -9 leaves no orphan; a worker that died (it was killed) is replaced, and the reply in hand is checked in
a thread meanwhile.
"""

from __future__ import annotations

import asyncio
import ipaddress
import multiprocessing
import multiprocessing.connection
import os
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from common import gc_policy, json_codec
from common.errors import ServiceRefusal
from common.parent_watch import end_with_parent
from reference_service import reply_check
from reference_service.reply_check import Derived
from rules import core, majority
from rules.registry import CHECKED, Rulebook

#: Bodies at least this big are checked in the worker; below it the check takes less than the hand-off.
CHECK_IN_WORKER = 64 << 10
#: One worker process: two did not serve the first wave of 150 connectivity reports faster (they share two
#: cores with the loop and, on one machine, the swarm).
#: Reports handed to the worker at a time; the others wait on the loop, unpickled. With eight at a time (the
#: big bodies read at once) the wave's 150 reports filled the executor's queue and its threads took the GIL
#: in bursts: the polls of that second waited p50 10 ms for the loop, 5 ms with one (docs/scale.md).
IN_FLIGHT = 1
#: How long a stopping service waits for its worker to read the end of its pipe (it does once it has started:
#: seconds at most, even at a load of 20) before it kills it.
STOP_SECONDS = 30.0


class Checker:
    """Checks big replies and derives from them what the rules would, keeping what helps the next report: the
    worker process's (its serving function owns one), and the service's for the reply in hand while a dead
    worker is replaced."""

    def __init__(self, rulebook: Rulebook) -> None:
        #: Whose derivers run on a reply's output (``documents.deriver``).
        self.rulebook = rulebook
        #: Which peer addresses are in which network (every report of a cluster names the same addresses).
        self.membership = majority.Membership()

    def verdict(self, raw: bytes, test_mode: bool, cidrs: tuple[str, ...] = ()
                ) -> tuple[tuple[int, str] | None, Any, Derived | None]:
        """(None, the reply, what the rules derive from it) when the body is a step reply the service takes,
        else (the refusal's status and reason, None, None); ``cidrs``: the host's machine networks, which a
        connectivity report's reach is derived over. The reply comes back pickled, which copies its output as
        it is, where decoding the body again would unescape it (0.5 ms for a 330 KB report)."""
        try:
            reply = json_codec.decode_request(raw) if raw else {}
            parsed = reply_check.check_reply(reply, test_mode=test_mode)
        except ServiceRefusal as exc:
            return (exc.status, exc.reason), None, None
        step_type = str(reply.get("step_type"))
        field = core.REPLY_FIELDS.get(step_type)
        if field is None or parsed is None or int(reply.get("exit_code") or 0) != 0:
            return None, reply, None
        reach = None
        if step_type == "connectivity-check":
            networks = [ipaddress.ip_network(c) for c in cidrs]
            reach = (cidrs, majority.reached(parsed, networks, self.membership))
        return None, reply, Derived({field: self.rulebook.derive_all(field, parsed)}, reach)


def _serve(parent: int, conn: Connection) -> None:
    """The worker process's life: it ends with the service (``parent``, its pid: ``common.parent_watch``, also
    when the service was killed before the worker had imported its modules), builds its checker, collects
    garbage on the service's schedule (``gc_policy``: with CPython's default one, decoding a 1,000-peer report,
    some 50,000 objects, ran dozens of collections, a fifth of the report's check: 4.9 ms, 3.9 without), then
    answers ``(fn, args)`` with ``fn(checker, *args)`` until the service closes its end of the pipe."""
    end_with_parent(parent)
    checker = Checker(Rulebook.of())
    gc_policy.settle_after_startup()
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):  # the service stopped it (or is gone)
            return
        try:
            answer: tuple[bool, Any] = (True, fn(checker, *args))
        except Exception as exc:  # the caller's to raise, as an executor would
            answer = (False, exc)
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an answer that does not pickle: say so rather than die
            conn.send((False, RuntimeError(f"{fn.__qualname__}: unpicklable answer: {exc!r}")))


class WorkerGone(Exception):
    """The worker process ended (it was killed) with a call in hand."""


class ReplyWorkers:
    """The service's reply worker: its process, started on the first big reply, and the reports handed to it
    at a time (per event loop). The service owns it (``ReferenceService.reply_workers``) and ends it however it
    is stopped: the command line's way out (``cli``), or the app's lifespan shutdown (``http.app``) when
    something else serves the app; a service killed outright takes its worker with it (``_serve``)."""

    def __init__(self, rulebook: Rulebook) -> None:
        #: The service's: which step types' handlers read no document (``text_only``).
        self.rulebook = rulebook
        #: One call on the pipe at a time; the process's start and end.
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        #: Checks the reply in hand, in a thread, when the worker died with it.
        self._here = Checker(rulebook)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def start(self) -> int:
        """The worker process's pid, started by this thread if it is not running. The kernel ends the worker
        when the *thread* that started it ends (``PR_SET_PDEATHSIG`` follows the parent thread), so it is started
        by a thread that lives as long as the service (the event loop's: ``check``), never by a thread a call
        waits in (the loop's executor's, which end with the loop)."""
        with self._lock:
            return self._started()[0].pid or 0

    def _started(self) -> tuple[BaseProcess, Connection]:
        if self._process is None or self._conn is None:
            context = multiprocessing.get_context("spawn")
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(os.getpid(), there), name="reply-worker", daemon=True)
            process.start()
            there.close()  # (the worker's end: the worker reads an end of file once the service closes its own)
            self._process, self._conn = process, here
            threading.Thread(target=self._reap, args=(process,), name="reply-worker-reaper", daemon=True).start()
        return self._process, self._conn

    def _reap(self, process: BaseProcess) -> None:
        """Waits for the worker to end: one that dies between calls (killed) is reaped then, not left a zombie
        until the next big reply; the next call starts another. (A call in hand sees it die itself.)"""
        multiprocessing.connection.wait([process.sentinel])
        with self._lock:
            if self._process is process:
                self._stop(kill=False)

    def call(self, fn: Callable[..., Any], *args: Any, start: bool = True) -> Any:
        """``fn(the worker's checker, *args)`` in the worker process (``fn`` pickled by name), waited for. Raises
        what ``fn`` raised, or :class:`WorkerGone`; with ``start`` False also when no worker is running (a call
        waiting in a short-lived thread: see :meth:`start`)."""
        with self._lock:
            if self._conn is None and not start:
                raise WorkerGone("no worker running")
            _, conn = self._started()
            try:
                conn.send((fn, args))
                ok, value = conn.recv()
            except (EOFError, OSError) as exc:
                self._stop(kill=True)
                raise WorkerGone(str(exc)) from None
        if not ok:
            raise value
        return value

    async def check(self, raw: bytes, test_mode: bool, cidrs: tuple[str, ...] = ()
                    ) -> tuple[Any, Any, Derived | None]:
        """The reply and its parsed output, as ``reply_check.check_reply`` accepts them, and what the checker's
        ``verdict`` derived; or ServiceRefusal(400)."""
        loop = asyncio.get_running_loop()
        async with self._turns.setdefault(loop, asyncio.Semaphore(IN_FLIGHT)):
            self.start()  # (by the loop's thread, not the one the call waits in: see ``start``)
            try:
                refused, reply, derived = await asyncio.to_thread(self.call, Checker.verdict, raw, test_mode, cidrs,
                                                                  start=False)
            except WorkerGone:  # (the next call starts another worker)
                refused, reply, derived = await asyncio.to_thread(self._here.verdict, raw, test_mode, cidrs)
        if refused is not None:
            raise ServiceRefusal(*refused)
        if derived is not None and reply.get("step_type") in self.rulebook.text_only:
            return reply, CHECKED, derived
        return reply, reply_check.parsed_output(reply), derived

    def _stop(self, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()  # the worker reads the end of file and returns
        if process is not None:
            if kill:
                process.kill()
            process.join(STOP_SECONDS)
            if process.exitcode is None:
                process.kill()
                process.join()

    def shutdown(self) -> None:
        """Ends the worker process (the service's exit); a later big reply would start another."""
        with self._lock:
            self._stop(kill=False)
