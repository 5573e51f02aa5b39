"""The reply worker process: it collects garbage on the service's schedule, since a 1,000-peer report decoded
under CPython's default one spent a fifth of its check in collections."""

from __future__ import annotations

import asyncio
import concurrent.futures
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
from tests.support.paths import ROOT
from tests.support.worker_ready import READY_ENV, alive, wait_ready


def test_the_worker_collects_on_the_services_schedule() -> None:
    workers = reply_workers.ReplyWorkers()
    try:
        pool = workers.executor()
        assert pool.submit(gc.get_threshold).result(timeout=60) == gc_policy.THRESHOLDS
        assert pool.submit(gc.get_freeze_count).result(timeout=60) > 0  # what start-up made is never scanned
    finally:
        workers.shutdown()


class _Counting(concurrent.futures.ThreadPoolExecutor):
    """A real executor that remembers how many calls it held at once."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.held = self.most = 0
        self._count = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        def counted() -> Any:
            time.sleep(0.02)  # long enough for every other check to have been asked for
            return fn(*args, **kwargs)

        with self._count:
            self.held += 1
            self.most = max(self.most, self.held)
        future = super().submit(counted)
        future.add_done_callback(lambda _: self._release())
        return future

    def _release(self) -> None:
        with self._count:
            self.held -= 1


def test_reports_are_handed_to_the_worker_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The others wait on the loop: eight in the executor's queue made its threads take the GIL from the loop
    in bursts during the discovery wave."""
    pool = _Counting()
    workers = reply_workers.ReplyWorkers()
    monkeypatch.setattr(workers, "executor", lambda: pool)

    async def main() -> list[Any]:
        replies = [{"step_id": f"s-{i}", "step_type": "inventory", "exit_code": 1, "output": "", "error": "x" * i}
                   for i in range(6)]
        return list(await asyncio.gather(*(workers.check(json.dumps(r).encode(), False) for r in replies)))

    try:
        results = asyncio.run(main())
    finally:
        pool.shutdown()
    assert [reply["error"] for reply, _, _ in results] == ["x" * i for i in range(6)]
    assert pool.most == reply_workers.IN_FLIGHT == 1


_DIES_AT_ONCE = """
import functools, os, signal
from multiprocessing import resource_tracker
from reference_service import reply_workers
from tests.support import worker_ready
# the same initializer, with a mark of the worker's imports before it runs
reply_workers._start_worker = functools.partial(worker_ready.mark_then_run,
                                                "reference_service.reply_workers._start_worker")
pool = reply_workers.ReplyWorkers().executor()
pool.submit(os.getpid)
print(*pool._processes, resource_tracker._resource_tracker._pid, flush=True)
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
