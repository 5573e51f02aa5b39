"""The guard of tests/conftest.py (tests/support/children.py): a process a test started and left running is
reported and killed; one that has ended is not reported."""

from __future__ import annotations

import subprocess

from tests.support.children import left_behind, running_children


def test_a_child_left_running_is_reported_and_killed() -> None:
    before = running_children()
    with subprocess.Popen(["sleep", "600"]) as proc:
        left = left_behind(before, grace=0.5)  # a sleep of 600 s is still running whatever the load
        assert left == [f"{proc.pid} sleep 600"]
        assert proc.wait(timeout=60) == -9  # killed by the guard, so it leaves nothing to the tests after it


def test_a_child_that_ended_is_not_reported() -> None:
    before = running_children()
    subprocess.run(["true"], check=True)
    with subprocess.Popen(["true"]) as proc:
        proc.wait(timeout=60)
        assert left_behind(before, grace=0.5) == []
