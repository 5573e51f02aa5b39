"""The reply worker process: it collects garbage on the service's schedule, since a 1,000-peer report decoded
under CPython's default one spent a fifth of its check in collections; it keeps what it keeps between reports
on an object of its own; it ends with the service however the service ends."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from common import gc_policy
from reference_service import reply_workers
from reference_service.http.app import create_app
from reference_service.orchestrator import BASE, ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas
from rules.registry import Rulebook
from tests.support.paths import ROOT
from tests.support.worker_ready import READY_ENV, alive, wait_ready

RULES = Rulebook.of()


def _gc_state(checker: reply_workers.Checker) -> tuple[tuple[int, ...], int]:
    return gc.get_threshold(), gc.get_freeze_count()


def _membership(checker: reply_workers.Checker) -> tuple[int, int, int]:
    """Which object the worker's checker keeps its membership table on, and how many addresses it holds."""
    return id(checker), id(checker.membership), sum(len(t) for t in checker.membership._tables.values())


def _report(peers: int) -> bytes:
    output = json.dumps({"remote_hosts": [
        {"host_id": f"00000000-0000-0000-0000-{i:012d}", "l2_connectivity": [
            {"outgoing_nic": "eth0", "remote_ip_address": f"10.0.{i // 250}.{i % 250 + 1}",
             "remote_mac": "02:00:00:00:00:01", "successful": True}]} for i in range(peers)]})
    return json.dumps({"step_id": "connectivity-check-1", "step_type": "connectivity-check", "exit_code": 0,
                       "output": output}).encode()


def test_the_worker_collects_on_the_services_schedule() -> None:
    workers = reply_workers.ReplyWorkers(RULES)
    try:
        threshold, frozen = workers.call(_gc_state)
        assert tuple(threshold) == gc_policy.THRESHOLDS
        assert frozen > 0  # what start-up made is never scanned
    finally:
        workers.shutdown()


def test_what_the_worker_keeps_between_reports_is_its_checkers() -> None:
    """The membership table was the worker module's (``_MEMBERSHIP``); it is the checker's that the worker's
    serving function owns, kept from one report to the next, and a new worker starts with a new one."""
    workers = reply_workers.ReplyWorkers(RULES)
    try:
        assert workers.call(_membership)[2] == 0
        refused, _, derived = workers.call(reply_workers.Checker.verdict, _report(300), False, ("10.0.0.0/24",))
        assert refused is None and derived is not None and derived.reach is not None
        checker, table, known = workers.call(_membership)
        assert known == 300, "the report's addresses are remembered for the next one"
        assert workers.call(_membership) == (checker, table, known)
        first = workers.start()
        workers.shutdown()
        assert workers.start() != first
        assert workers.call(_membership)[2] == 0
    finally:
        workers.shutdown()


def _pid(checker: reply_workers.Checker) -> int:
    return os.getpid()


def test_the_worker_outlives_the_loop_whose_reply_started_it() -> None:
    """The kernel ends the worker with the *thread* that started it (PR_SET_PDEATHSIG): started by the thread a
    call waited in (the loop's executor's), it was killed as soon as that loop ended and its executor with it."""
    workers = reply_workers.ReplyWorkers(RULES)
    try:
        back, _, derived = asyncio.run(workers.check(_report(3), False, ("10.0.0.0/24",)))
        assert back["step_type"] == "connectivity-check" and derived is not None
        assert workers.call(_pid, start=False) > 0, "the worker the first reply started still answers"
    finally:
        workers.shutdown()


def test_reports_are_handed_to_the_worker_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The others wait on the loop: eight in the executor's queue made its threads take the GIL from the loop
    in bursts during the discovery wave."""
    workers = reply_workers.ReplyWorkers(RULES)
    checker = reply_workers.Checker(RULES)
    count = threading.Lock()
    held = most = 0

    def call(fn: Callable[..., Any], *args: Any, start: bool = True) -> Any:  # the real check, here, counted
        nonlocal held, most
        with count:
            held += 1
            most = max(most, held)
        try:
            time.sleep(0.02)  # long enough for every other check to have been asked for
            return fn(checker, *args)
        finally:
            with count:
                held -= 1

    monkeypatch.setattr(workers, "call", call)
    monkeypatch.setattr(workers, "start", lambda: 0)

    async def main() -> list[Any]:
        replies = [{"step_id": f"s-{i}", "step_type": "inventory", "exit_code": 1, "output": "", "error": "x" * i}
                   for i in range(6)]
        return list(await asyncio.gather(*(workers.check(json.dumps(r).encode(), False) for r in replies)))

    results = asyncio.run(main())
    assert [reply["error"] for reply, _, _ in results] == ["x" * i for i in range(6)]
    assert most == reply_workers.IN_FLIGHT == 1


def test_a_reply_that_comes_as_the_worker_is_killed_is_checked_all_the_same() -> None:
    """In the service's thread if the call saw the worker die, else in the worker started for it."""
    workers = reply_workers.ReplyWorkers(RULES)
    try:
        os.kill(workers.start(), signal.SIGKILL)
        back, _, derived = asyncio.run(workers.check(_report(3), False, ("10.0.0.0/24",)))
        assert back["step_type"] == "connectivity-check" and derived is not None
        assert derived.fields["connectivity"] == RULES.derive_all("connectivity", json.loads(back["output"]))
        threshold, _ = workers.call(_gc_state)  # and the next call has a worker again
        assert tuple(threshold) == gc_policy.THRESHOLDS
    finally:
        workers.shutdown()


_DIES_AT_ONCE = """
import functools, os, signal
from multiprocessing import resource_tracker
from reference_service import reply_workers
from rules.registry import Rulebook
from tests.support import worker_ready
# the same serving function, with a mark of the worker's imports before it runs
reply_workers._serve = functools.partial(worker_ready.mark_then_run, "reference_service.reply_workers._serve")
worker = reply_workers.ReplyWorkers(Rulebook.of()).start()
print(worker, resource_tracker._resource_tracker._pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # before the worker has even imported its modules
"""


def test_a_service_killed_while_its_worker_starts_leaves_no_process(tmp_path: Path) -> None:
    """The worker sets PR_SET_PDEATHSIG only once its imports are done; a service killed before that left the
    worker (and multiprocessing's resource tracker, which waits for it) running, parented to init. The wait is
    for the worker's imports to end (an event: tests/support/worker_ready.py), then 30 s, a backstop for what is
    left (a few system calls, the tracker's reading an end of file) that only a worker left running reaches."""
    mark = tmp_path / "ready"
    with subprocess.Popen([sys.executable, "-c", _DIES_AT_ONCE], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT, env={**os.environ, READY_ENV: str(mark)}) as proc:
        assert proc.stdout is not None  # (read a line only: a worker left running holds the pipe open)
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert proc.wait(timeout=120) == -signal.SIGKILL
    assert len(pids) == 2
    try:
        assert wait_ready(mark, pids), "the worker ended before its initializer ran"
        deadline = time.monotonic() + 30
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in pids), "left running: " + " ".join(
            str(p) for p in pids if alive(p))
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _pool_workers() -> set[int]:
    """This process's pool workers still running (multiprocessing's resource tracker is not one)."""
    found = set()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
    return found


async def _post(app: Any, path: str, body: bytes) -> int:
    sent, status = False, list[int]()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app({"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
               "root_path": "", "scheme": "http", "http_version": "1.1", "client": ("127.0.0.1", 1),
               "server": ("127.0.0.1", 80), "headers": [(b"content-length", str(len(body)).encode()),
                                                        (b"content-type", b"application/json")]}, receive, send)
    return status[0]


def test_an_app_served_with_its_lifespan_ends_its_reply_worker_at_shutdown(tmp_path: Path) -> None:
    """The pool was the module's, ended only on the command line's way out (``cli``): anything else serving the
    app (uvicorn's default lifespan, a test's server) left the worker running after the app had shut down. It is
    the service's now, and the app's lifespan ends it. Served here in this thread, as uvicorn would serve it."""
    load_areas()
    svc = ReferenceService(Store(tmp_path / "db"), Settings())
    app = create_app(svc)
    path = f"{BASE}/v2/infra-envs/{uuid.uuid4()}/hosts/{uuid.uuid4()}/instructions"
    body = json.dumps({"step_id": "s-1", "step_type": "inventory", "exit_code": 1, "output": "",
                       "error": "x" * reply_workers.CHECK_IN_WORKER})

    async def main() -> tuple[int, set[int], list[str]]:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        said: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            said.append(message["type"])

        lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                           inbox.get, send))
        await inbox.put({"type": "lifespan.startup"})
        status = await _post(app, path, body.encode())  # checked by the worker; then the host is unknown
        during = _pool_workers()
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, timeout=120)
        return status, during, said

    try:
        status, during, said = asyncio.run(main())
        assert status == 404 and during, "the big reply was checked in a worker process"
        assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert not during & _pool_workers(), "the reply worker outlived the app's shutdown"
    finally:
        svc.reply_workers.shutdown()
        svc.store.close()
