"""``python -m agent`` (agent/__main__.py) is the agent's command line, exit statuses included; and a previous
life's step processes are found by their mark and killed (agent.state.reap_leftovers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from agent.state import reap_leftovers
from agent.step_env import MARK_ENV
from common import __version__
from tests.support.paths import ROOT


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "AGENT_STATE_DIR": ""})


def test_version_and_the_exit_status_of_a_bad_command_line() -> None:
    version = _agent("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"agent {__version__}")
    bad = _agent("step", "no-such-step")
    assert bad.returncode == 2
    assert "no step named 'no-such-step'" in bad.stderr and "agent step --list" in bad.stderr


def test_a_step_runs_through_the_module_entry_point() -> None:
    listing = _agent("step", "--list")
    assert listing.returncode == 0 and any(line.startswith("inventory ") for line in listing.stdout.splitlines())


def test_leftovers_of_a_previous_life_are_killed_and_others_are_not(tmp_path: Path) -> None:
    mark = str(tmp_path / "state")
    ours = subprocess.Popen(["sleep", "60"], env={**os.environ, MARK_ENV: mark})
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, MARK_ENV: mark + "-another-agent"})
    try:
        deadline = time.monotonic() + 10  # the environment is readable once exec is done
        while psutil.Process(ours.pid).environ().get(MARK_ENV) != mark and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reap_leftovers(mark) == 1
        ours.wait(timeout=10)  # killed (and already reaped by reap_leftovers' wait, so no status here)
        assert other.poll() is None
        assert reap_leftovers("") == 0  # no state directory: nothing is anyone's leftover
    finally:
        for proc in (ours, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_names_steps_share_import_nothing() -> None:
    """agent.step_env is imported by the resident fork server, so every step carries what it imports."""
    probe = ("import sys; before = set(sys.modules); import agent.step_env; "
             "print(sorted(m for m in set(sys.modules) - before if not m.startswith(('agent', 'common'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr
