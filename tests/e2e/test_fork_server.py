"""Steps are forked from one warm process (agent.fork_server): each still in a process and session of its own,
killed with its tree at its deadline, and nothing a step or the server does takes the daemon with it.

Real processes throughout: the runner is the daemon's (in this test process, which plays the daemon), the fork
server a real interpreter, the steps the sample plugins of tests/plugins.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.config import AgentConfig
from agent.runner import Reply, StepRunner
from steps import registry
from tests.support.service import RefService, start_agent

pytestmark = pytest.mark.no_child_left  # the fork servers of in-process runners end with their tests

HOST_ID = "00000000-0000-0000-0000-0000000000f5"


@pytest.fixture
def runner(sample_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepRunner]:
    monkeypatch.syspath_prepend(str(sample_plugins))  # this process lists the plugins too (registry.available)
    registry.available.cache_clear()
    r = StepRunner(AgentConfig())
    try:
        yield r
    finally:
        r.close()
        registry.available.cache_clear()


def _whoami(runner: StepRunner, step_id: str) -> dict[str, object]:
    reply = runner.run("sample-whoami", step_id, [])
    assert reply.exit_code == 0, reply.error
    return dict(json.loads(reply.output))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in pids):
        assert time.monotonic() < deadline, f"{what} survived: {[p for p in pids if not _gone(p)]}"
        time.sleep(0.05)


def test_every_step_is_a_fork_of_one_warm_server_in_a_session_of_its_own(runner: StepRunner) -> None:
    seen = [_whoami(runner, f"who-{i}") for i in range(3)]
    server = runner.forks.pid()
    assert server is not None and psutil.Process(server).ppid() == os.getpid()
    assert {s["ppid"] for s in seen} == {server}  # forked by the server, not started by the daemon
    assert len({s["pid"] for s in seen}) == 3  # a process per step
    assert all(s["sid"] == s["pid"] for s in seen)  # each in a new session (killed as a group)
    assert all(s["comm"] == "step sample-who" for s in seen)  # told apart from the server in ps
    # the framework was imported before the fork (in the server), the step's own module in the step
    assert "agent.step_process" in seen[0]["modules"]  # type: ignore[operator]
    assert not [m for m in __import__("sys").modules if m.startswith("sample_steps")]  # never in the daemon


def test_a_crashing_hanging_or_broken_step_takes_nothing_else_with_it(runner: StepRunner, tmp_path: Path) -> None:
    _whoami(runner, "before")
    server = runner.forks.pid()
    crashed = runner.run("sample-crash", "crash", [])
    raised = runner.run("sample-raise", "raise", [])
    broken = runner.run("sample-broken", "broken", [])
    pid_file = tmp_path / "grandchild.pid"
    hung = runner.run("sample-spawn-hang", "hang", [str(pid_file)])
    assert crashed.exit_code == 3 and "exit status 3" in crashed.error
    assert raised.exit_code == -1 and "the plugin has a bug" in raised.error
    assert broken.exit_code == -1 and "failed to load" in broken.error
    assert hung.exit_code == 124 and "killed" in hung.error
    _wait_gone([int(pid_file.read_text())], "the hung step's grandchild")
    assert runner.forks.pid() == server  # the same server, still serving
    assert _whoami(runner, "after")["ppid"] == server


def test_a_killed_fork_server_is_replaced_and_the_step_it_took_runs_again(runner: StepRunner) -> None:
    _whoami(runner, "before")
    server = runner.forks.pid()
    assert server is not None
    result: list[Reply] = []
    thread = threading.Thread(target=lambda: result.append(
        runner.run("sample-echo", "echo", [json.dumps({"message": "twice", "sleep": 2})])))
    thread.start()
    deadline = time.monotonic() + 20
    while not (steps := [p for p in psutil.Process(server).children() if p.name() == "step sample-ech"]):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.02)
    os.kill(server, signal.SIGKILL)
    thread.join(60)
    _wait_gone([steps[0].pid], "the step of the killed server")  # it died with its server, as its tree would
    (reply,) = result
    assert reply.exit_code == 0 and json.loads(reply.output)["echo"] == "twice"  # run again: no instruction lost
    assert runner.forks.pid() not in (None, server)
    assert _whoami(runner, "after")["ppid"] == runner.forks.pid()


def test_the_daemon_survives_its_fork_server_being_killed(service: RefService, tmp_path: Path,
                                                          sample_plugins: Path) -> None:
    cluster = service.create_cluster(control_plane_count=1)
    ie = service.create_infra_env(cluster_id=cluster["id"])["id"]

    def queue(step: str, *args: str) -> None:
        service.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{HOST_ID}/instructions", expected=201,
                     json={"step_type": step, "args": list(args)})

    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        queue("sample-whoami")
        first = json.loads(service.wait_replies(HOST_ID, "sample-whoami")[0]["output"])
        server = int(first["ppid"])
        assert psutil.Process(server).ppid() == agent.proc.pid
        os.kill(server, signal.SIGKILL)
        agent.wait_log("fork server", timeout=20)
        queue("sample-echo", json.dumps({"message": "after the kill"}))
        (echo,) = service.wait_replies(HOST_ID, "sample-echo")
        assert json.loads(echo["output"])["echo"] == "after the kill"
        queue("sample-whoami")
        replies = service.wait_replies(HOST_ID, "sample-whoami", count=2)
        assert agent.alive()
    second = json.loads(replies[-1]["output"])
    assert second["ppid"] != server
    _wait_gone([int(second["ppid"])], "the fork server of a stopped daemon")
