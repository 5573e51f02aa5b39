"""Big step replies checked in a worker process, so that neither the event loop nor its GIL waits for them.

A 1,000-peer connectivity report (330 KB) takes about 8 ms of pure Python to decode and check against the
spec. On the loop that stalls every request; in a thread it holds the GIL the loop needs: at 1,000 hosts the
first 150 hosts' reports, checked by six threads, took the loop's requests from milliseconds to 0.4 s. The
worker process says why not, or hands the decoded reply back with what the rules derive from its output
(``documents.deriver``, and the report's reach for the cluster digest: 2 to 5 ms of the loop or of a thread for
that report, now a few kilobytes to unpickle). The loop decodes the output again (0.7 ms with orjson) only
for a step whose reply handler reads the document (``registry.reply_handler``'s ``text_only``).

The pool is started on the first big reply (a service of a few hosts never starts it); it is the service's
(``ReplyWorkers``), not this module's, and ends with it. Its process asks the kernel to end it with the service
(``PR_SET_PDEATHSIG``), so a kill -9 leaves no orphan; a pool that broke (its process was killed) is replaced,
and the reply in hand is checked in a thread meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import multiprocessing
import os
import threading
import weakref
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from common import gc_policy, json_codec
from common.errors import ServiceRefusal
from common.parent_watch import end_with_parent
from reference_service import reply_check
from reference_service.reply_check import Derived
from rules import core, documents, majority, registry

#: Bodies at least this big are checked in the worker; below it the check takes less than the hand-off.
CHECK_IN_WORKER = 64 << 10
#: Worker processes (two did not serve the first wave of 150 connectivity reports faster: they share two
#: cores with the loop and, on one machine, the swarm).
WORKERS = 1
#: Reports handed to the worker at a time; the others wait on the loop, unpickled. With eight at a time (the
#: big bodies read at once) the wave's 150 reports filled the executor's queue and its threads took the GIL
#: in bursts: the polls of that second waited p50 10 ms for the loop, 5 ms with one (docs/scale.md).
IN_FLIGHT = 1

#: Which peer addresses are in which network, for the reports this process derives reach from (every report
#: of a cluster names the same addresses); the worker process's own.
_MEMBERSHIP = majority.Membership()


def _start_worker(parent: int) -> None:
    """The worker ends with the service (``parent``, its pid: ``common.parent_watch``, also when the service
    was killed before the worker had imported its modules), and collects garbage on the service's schedule
    (``gc_policy``): with CPython's default one, decoding a 1,000-peer report (some 50,000 objects) ran dozens
    of collections, a fifth of the report's check (4.9 ms, 3.9 without)."""
    end_with_parent(parent)
    gc_policy.settle_after_startup()


def verdict(raw: bytes, test_mode: bool, cidrs: tuple[str, ...] = ()
            ) -> tuple[tuple[int, str] | None, Any, Derived | None]:
    """(None, the reply, what the rules derive from it) when the body is a step reply the service takes, else
    (the refusal's status and reason, None, None); ``cidrs``: the host's machine networks, which a connectivity
    report's reach is derived over. The reply comes back pickled, which copies its output as it is, where
    decoding the body again would unescape it (0.5 ms for a 330 KB report)."""
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
        reach = (cidrs, majority.reached(parsed, networks, _MEMBERSHIP))
    return None, reply, Derived({field: documents.derive_all(field, parsed)}, reach)


class ReplyWorkers:
    """The service's reply worker: its pool, started on the first big reply, and the reports handed to it at a
    time (per event loop). The service owns it (``ReferenceService.reply_workers``) and ends it however it is
    stopped: the command line's way out (``cli``), or the app's lifespan shutdown (``http.app``) when something
    else serves the app; a service killed outright takes its worker with it (``_start_worker``)."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=(os.getpid(),))
            return self._pool

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def check(self, raw: bytes, test_mode: bool, cidrs: tuple[str, ...] = ()
                    ) -> tuple[Any, Any, Derived | None]:
        """The reply and its parsed output, as ``reply_check.check_reply`` accepts them, and what ``verdict``
        derived; or ServiceRefusal(400)."""
        loop = asyncio.get_running_loop()
        async with self._turns.setdefault(loop, asyncio.Semaphore(IN_FLIGHT)):
            pool = self.executor()
            try:
                refused, reply, derived = await loop.run_in_executor(pool, verdict, raw, test_mode, cidrs)
            except BrokenProcessPool:
                self._replace(pool)
                refused, reply, derived = await asyncio.to_thread(verdict, raw, test_mode, cidrs)
        if refused is not None:
            raise ServiceRefusal(*refused)
        if derived is not None and reply.get("step_type") in registry.TEXT_ONLY:
            return reply, registry.CHECKED, derived
        return reply, reply_check.parsed_output(reply), derived

    def shutdown(self) -> None:
        """Ends the worker process (the service's exit); a later big reply would start another."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
