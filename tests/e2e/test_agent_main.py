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


def test_sigterm_during_start_up_stops_the_agent_even_as_pid_1_of_a_container(tmp_path: Path) -> None:
    """PID 1 of a PID namespace (a container without an init, as the Go suite's compose service) never dies of
    a signal it has no handler for: a SIGTERM before the daemon's handler was dropped and `docker stop` waited
    10 s for SIGKILL. Here the agent, PID 1 of its own namespace, blocks in start-up opening its agent.conf (a
    FIFO nobody writes), before the daemon's handler exists; SIGTERM must end it at once, exit 0."""
    conf = tmp_path / "agent.conf"
    os.mkfifo(conf)
    env = {**os.environ, "AGENT_CONFIG": str(conf), "AGENT_STATE_DIR": str(tmp_path / "state"),
           "PULL_SECRET_TOKEN": "tok"}
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "agent",
                              "--url", "http://127.0.0.1:9", "--infra-env-id", "11111111-1111-1111-1111-111111111111"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid = 0
    try:
        deadline = time.monotonic() + 120  # start-up at load 20 takes seconds, not minutes
        caught = 0
        while time.monotonic() < deadline and outer.poll() is None:
            try:
                pid = int(Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split()[0])
                status = Path(f"/proc/{pid}/status").read_text()
                caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
            except (OSError, IndexError, ValueError):
                pass
            if caught & (1 << (15 - 1)):  # a handler for SIGTERM (15), while agent.conf still blocks start-up
                break
            time.sleep(0.05)
        assert caught & (1 << 14), "no SIGTERM handler while the agent starts"
        os.kill(pid, 15)
        out, _ = outer.communicate(timeout=30)
        assert outer.returncode == 0, out
    finally:
        if outer.poll() is None:
            if pid:
                os.kill(pid, 9)
            outer.kill()
            outer.wait(30)
