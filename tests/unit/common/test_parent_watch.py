"""common.parent_watch: a pool's worker ends with the process that started it, also when that process was
killed before the worker had set PR_SET_PDEATHSIG (the swarm's workers, killed with the swarm by
tests/support/swarm_hosts.py, were found running for hours, parented to init, with their resource trackers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.paths import ROOT

_STARTS_A_POOL_AND_DIES = """
import concurrent.futures, multiprocessing, os, signal, sys
from multiprocessing import resource_tracker
from common.parent_watch import end_with_parent
watched = sys.argv[1] == "watched"
pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
    initializer=end_with_parent if watched else None, initargs=(os.getpid(),) if watched else ())
pool.submit(os.getpid)
print(*pool._processes, resource_tracker._resource_tracker._pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _left_running(mode: str, wait: float) -> list[int]:
    """The pool's processes still running ``wait`` seconds after their parent was killed (then ended)."""
    with subprocess.Popen([sys.executable, "-c", _STARTS_A_POOL_AND_DIES, mode], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT) as proc:  # (read a line only: a worker left running holds the pipe open)
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert proc.wait(timeout=120) == -signal.SIGKILL and len(pids) == 2
    deadline = time.monotonic() + wait
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_a_watched_worker_ends_with_its_killed_parent() -> None:
    assert _left_running("watched", wait=30) == []


def test_an_unwatched_worker_outlives_its_killed_parent() -> None:
    """What the watch is for: without it both the worker and the resource tracker stay."""
    assert len(_left_running("unwatched", wait=5)) == 2
