"""common.parent_watch: a pool's worker ends with the process that started it, also when that process was
killed before the worker had set PR_SET_PDEATHSIG (the swarm's workers, killed with the swarm by
tests/support/swarm_hosts.py, were found running for hours, parented to init, with their resource trackers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.worker_ready import READY_ENV, alive, wait_ready

_STARTS_A_POOL_AND_DIES = """
import concurrent.futures, multiprocessing, os, signal, sys
from multiprocessing import resource_tracker
from tests.support import worker_ready
watched = sys.argv[1] == "watched"
pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
    initializer=worker_ready.mark_then_run if watched else worker_ready.mark_ready,
    initargs=("common.parent_watch.end_with_parent", os.getpid()) if watched else ())
pool.submit(os.getpid)
print(*pool._processes, resource_tracker._resource_tracker._pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _left_running(mode: str, wait: float, tmp_path: Path) -> list[int]:
    """The pool's processes still running ``wait`` seconds after the worker finished its imports, its parent
    killed before that (then ended)."""
    mark = tmp_path / "ready"
    with subprocess.Popen([sys.executable, "-c", _STARTS_A_POOL_AND_DIES, mode], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT, env={**os.environ, READY_ENV: str(mark)}) as proc:
        assert proc.stdout is not None  # (read a line only: a worker left running holds the pipe open)
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert proc.wait(timeout=120) == -signal.SIGKILL and len(pids) == 2
    try:
        assert wait_ready(mark, pids), "the worker ended before its initializer ran"
        deadline = time.monotonic() + wait
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [p for p in pids if alive(p)]
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_watched_worker_ends_with_its_killed_parent(tmp_path: Path) -> None:
    """Once its imports are done, what is left is a few system calls and the resource tracker's reading an end of
    file: 30 s is a backstop that only a worker left running reaches, not a bound on the imports."""
    assert _left_running("watched", 30, tmp_path) == []


def test_an_unwatched_worker_outlives_its_killed_parent(tmp_path: Path) -> None:
    """What the watch is for: without it both the worker and the resource tracker stay, past their imports."""
    assert len(_left_running("unwatched", 5, tmp_path)) == 2
