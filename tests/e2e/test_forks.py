"""agent.forks, the daemon's handle on its fork server, used directly: step processes forked by one warm server
report on their result channel and their exit status comes back; a server that was killed is replaced by the
next request; stop ends it. (Through the runner and the daemon: tests/e2e/test_fork_server.py.)"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from agent.config import AgentConfig
from agent.forks import ForkServer, Spawned, wait_exit
from agent.step_env import PARENT_ENV
from tests.support.paths import PLUGINS

pytestmark = pytest.mark.no_child_left  # the fork servers of in-process runners end with their tests


@pytest.fixture
def forks() -> Iterator[ForkServer]:
    path = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, PARENT_ENV: str(os.getpid())}  # as the runner starts it
    server = ForkServer(env)
    yield server
    server.stop()


def _echo(forks: ForkServer, message: str) -> tuple[Spawned, list[dict[str, object]]]:
    request = {"step_type": "sample-echo", "step_id": f"echo-{message}", "args": [json.dumps({"message": message})],
               "config": AgentConfig().to_dict(), "validate_only": False}
    spawned = forks.spawn(request, dict(forks.env))
    with spawned.channel:
        messages = [json.loads(line) for line in spawned.channel if line.strip()]
    return spawned, messages


def test_steps_are_forked_by_one_server_and_report_their_result(forks: ForkServer) -> None:
    first, messages = _echo(forks, "one")
    server = forks.pid()
    assert server is not None and psutil.Process(server).ppid() == os.getpid()
    result = next(m for m in messages if m.get("event") == "result")
    assert json.loads(str(result["output"]))["echo"] == "one" and result.get("exit_code", 0) == 0
    assert wait_exit(first) == 0
    second, _ = _echo(forks, "two")
    assert forks.pid() == server and second.pid != first.pid  # the same warm server, a new process
    assert wait_exit(second) == 0


def test_a_killed_server_is_replaced_by_the_next_request(forks: ForkServer) -> None:
    forks.start()
    _echo(forks, "warm")
    old = forks.pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while forks.pid() is not None and time.monotonic() < deadline:  # its end is noticed by its reader thread
        time.sleep(0.01)
    assert forks.pid() is None
    spawned, messages = _echo(forks, "after")
    assert forks.pid() not in (None, old)
    assert any(m.get("event") == "result" for m in messages) and wait_exit(spawned) == 0


def test_stop_ends_the_server(forks: ForkServer) -> None:
    _echo(forks, "x")
    pid = forks.pid()
    assert pid is not None
    forks.stop()
    assert forks.pid() is None and not psutil.pid_exists(pid)  # ended and reaped
