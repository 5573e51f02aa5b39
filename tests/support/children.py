"""Processes a test leaves behind: children of the pytest process that were not there before the test.

A test that starts a process (a fork server through a StepRunner, a service, an agent) must end it, also when it
fails; one left running holds its resources until pytest exits and can disturb the tests after it (ports, load,
a pid a later test looks for). tests/conftest.py checks this around the tests it guards (``no_child_left``).

Only direct children are looked at: a process left by a child that has ended is re-parented to init and is no
longer ours to see, and the children of children end with them or are their own tests' business. Processes the
standard library keeps for the life of the interpreter (multiprocessing's resource tracker and fork server) are
not a test's leftovers. A zombie has ended (only its exit status waits to be read), so it is not counted.
"""

from __future__ import annotations

import contextlib
import time

import psutil

#: Seconds a child that is on its way out (killed, its stop still in flight) gets to end before it counts as left
#: behind: an exit under load 20 on 2 cores takes well under a second; the bound is only reached by a real leak.
GRACE_SECONDS = 30.0

#: Command-line words of the interpreter-wide helpers of the standard library, started once and kept on purpose.
_LIFELONG = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def running_children() -> set[int]:
    """The pids of this process's children that are still running (zombies and lifelong helpers left out)."""
    found: set[int] = set()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(word in part for part in child.cmdline() for word in _LIFELONG):
                continue
            found.add(child.pid)
    return found


def _describe(pid: int) -> str:
    try:
        return f"{pid} {' '.join(psutil.Process(pid).cmdline())[:200]}"
    except psutil.Error:
        return f"{pid} (ended)"


def left_behind(before: set[int], grace: float = GRACE_SECONDS) -> list[str]:
    """Children started since ``before`` that are still running after ``grace`` seconds (the check ends as soon
    as they have ended), each described by its pid and command line; those are then killed, so that one test's
    leak does not fail the tests after it too. Nothing is reaped here: a child's exit status stays its owner's."""
    new = [p for pid in running_children() - before if (p := _process(pid)) is not None]
    deadline = time.monotonic() + grace
    while (left := [p for p in new if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    described = [_describe(p.pid) for p in left]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return described


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
