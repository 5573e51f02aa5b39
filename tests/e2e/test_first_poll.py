"""The daemon's way from its first register to its first poll and step: nothing the service does not wait for
stands in front of a request it waits for.

The Go suite (subsystem/agent_test.go: Happy flow, Step not exists) looks for the register, the first poll and
the first step's reply one second after the agent's container is started; on a loaded machine every bit of CPU
in front of them is multiplied. These tests assert the order of events, never a duration, so they hold at any
load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.step_env import MARK_ENV
from common.service_client import ServiceClient
from tests.unit.common.test_first_contact import HOST, IE, _json_answer, _registered, raw_server

#: The daemon in a child process whose service is a stand-in for common.first_contact.exchange (no socket): it
#: answers the register, and at each poll records what the daemon has loaded and started by then.
_DAEMON = """
import json, os, sys
import agent.daemon
import common.service_client as sc
from common.first_contact import Answer

agent.daemon.LEFTOVERS_DELAY = 3600.0  # the reaper runs when the daemon asks for it, not by its own timer
sc.FIRST_CONTACTS = 3  # the register and two polls come here (later ones would go through requests)
LEFTOVER = int(sys.argv[1])
AGENT = "quay.io/example/agent:v1"
polls = []

def children():
    found = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as stream:
            found += [int(pid) for pid in stream.read().split()]
    return found

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

def exchange(host, port, head, body, **kw):
    line = head.decode().split("\\r\\n", 1)[0]
    if line.startswith("POST") and line.endswith("/hosts HTTP/1.1"):
        runner = json.dumps({"host_id": sys.argv[2], "infra_env_id": sys.argv[3], "agent_version": AGENT})
        doc = {"id": sys.argv[2], "next_step_runner_command": {"args": [runner]}}
        return Answer(201, "Created", {"content-type": "application/json"}, json.dumps(doc).encode())
    polls.append({"modules": sorted(sys.modules), "children": children(), "leftover_alive": alive(LEFTOVER)})
    if len(polls) == 2:
        print(json.dumps(polls))
        sys.stdout.flush()
        for pid in children():  # the fork server
            os.kill(pid, 9)
        os._exit(0)
    return Answer(200, "OK", {"content-type": "application/json"},
                  json.dumps({"next_instruction_seconds": 0, "instructions": []}).encode())

sc.exchange = exchange
from agent.cli import main
main(["--url", "http://127.0.0.1:9", "--infra-env-id", sys.argv[3], "--agent-version", AGENT,
      "--host-id", sys.argv[2]])
"""

#: What the first poll does not wait for: the step machinery (agent.runner imports dataclasses, with inspect, ast
#: and dis), the fork server's start (subprocess, and a process), requests; the logging package (~20 ms of CPU:
#: configured once the first poll is answered, the register's line held until then) and urllib.parse with
#: ipaddress (the poll's query is written out), nor the socket module (common.first_contact uses _socket), nor
#: typing (the poll answer's records are common.records').
NOT_BEFORE_FIRST_POLL = ("agent.runner", "agent.forks", "agent.dispatch", "steps", "subprocess", "dataclasses",
                         "inspect", "requests", "urllib3", "logging", "common.logs", "urllib", "ipaddress", "socket",
                         "typing")


@pytest.fixture
def leftover(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A step process of a previous life of the agent that uses ``tmp_path / "state"``: it carries its mark."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                            env={**os.environ, MARK_ENV: str((tmp_path / "state").absolute())})
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_the_first_poll_goes_out_before_the_step_machinery_the_fork_server_and_the_leftovers_scan(
        tmp_path: Path, leftover: subprocess.Popen[bytes]) -> None:
    """The poll right after the register; then, before any step of it runs, the previous life's leftovers are
    killed (they carry the mark the new fork server carries too) and the fork server starts."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(AGENT_STATE_DIR=str(tmp_path / "state"), AGENT_CONFIG="/nonexistent", PULL_SECRET_TOKEN="tok")
    out = subprocess.run([sys.executable, "-c", _DAEMON, str(leftover.pid), HOST, IE], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    first, second = json.loads(out.stdout.splitlines()[-1])
    early = [m for m in first["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_BEFORE_FIRST_POLL)]
    assert early == []
    assert "registered host" in out.stderr  # held until the first poll was answered, then written
    assert first["children"] == [] and first["leftover_alive"]
    # by the next poll: the leftover was killed, then the fork server started (the only child)
    assert not second["leftover_alive"]
    assert "agent.forks" in second["modules"] and len(second["children"]) == 1
    assert leftover.wait(10) == -signal.SIGKILL


def test_the_first_poll_waits_for_no_logging_when_the_service_expects_another_agent_version(tmp_path: Path) -> None:
    """As in every spec of the Go suite (the agent is started with another --agent-version than the stubs'
    answer names): the warning about it is held with the register's line until the first poll is answered."""
    script = _DAEMON.replace('"agent_version": AGENT}', '"agent_version": AGENT + "-other"}')
    assert script != _DAEMON
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(AGENT_STATE_DIR=str(tmp_path / "state"), AGENT_CONFIG="/nonexistent", PULL_SECRET_TOKEN="tok")
    out = subprocess.run([sys.executable, "-c", script, "0", HOST, IE], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    first, _ = json.loads(out.stdout.splitlines()[-1])
    assert [m for m in first["modules"] if m == "logging" or m.startswith("logging.")] == []
    lines = out.stderr.splitlines()
    expects = next(i for i, line in enumerate(lines) if "the service expects agent quay.io/example/agent:v1-" in line)
    assert "registered host" in lines[expects + 1]  # in the order they were made


def test_polls_while_requests_loads_go_out_on_a_socket_rather_than_wait_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """requests is loaded in the background (about 0.1 s of CPU, several times that in wall time on a loaded
    machine) from the request after the first register and poll on, not beside the first poll's steps; a poll
    due meanwhile does not wait for it. Here the load does not end until the test says so: the second poll goes
    out on a plain socket; once requests is loaded, it carries the third."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    import common.http_session

    started, loaded = threading.Event(), threading.Event()
    build = common.http_session.build_session

    def slow_build(*args: object, **kwargs: object) -> object:
        started.set()
        loaded.wait(10)  # without the change, the third poll waits here for 10 s, then goes through requests
        return build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("common.http_session.build_session", slow_build)
    polls = [_json_answer("200 OK", {"instructions": [], "next_instruction_seconds": n}) for n in (1, 2, 3)]
    with raw_server(_registered(), *polls) as server:
        client = ServiceClient(AgentConfig(url=f"http://127.0.0.1:{server.port}", infra_env_id=IE,
                                           agent_version="v1", token="tok-1"))
        client.register(HOST)
        client.next_steps(IE, HOST, 1)
        assert not started.is_set()  # the first poll's steps have the interpreter to themselves
        assert client.next_steps(IE, HOST, 2)["next_instruction_seconds"] == 2
        assert started.wait(60)
        assert not loaded.is_set()
        loaded.set()
        deadline = time.monotonic() + 60
        while client._session is None:  # the background load ends
            assert time.monotonic() < deadline, "requests never loaded"
            time.sleep(0.05)
        assert client.next_steps(IE, HOST, 3)["next_instruction_seconds"] == 3
    third, fourth = server.requests[2:]
    assert b"?timestamp=2 HTTP/1.1\r\n" in third and b"\r\nConnection: close\r\n" in third
    assert b"?timestamp=3 HTTP/1.1\r\n" in fourth and b"Connection: close" not in fourth


class _Service:
    """A stand-in for the daemon's ServiceClient: registers, answers polls with no steps, records when they came;
    the daemon is stopped at the ``polls``-th."""

    base = "http://service.invalid/api/assisted-install"

    def __init__(self, daemon_stop: threading.Event, polls: int, next_instruction_seconds: float) -> None:
        self.stop, self.wanted, self.every = daemon_stop, polls, next_instruction_seconds
        self.polls: list[float] = []

    def new_request_id(self) -> str:
        return "request"

    def abort(self) -> None:
        pass

    def register(self, host_id: str) -> dict[str, object]:
        runner = json.dumps({"host_id": host_id, "infra_env_id": IE, "agent_version": "quay.io/example/agent:v1"})
        return {"id": host_id, "next_step_runner_command": {"args": [runner]}}

    def next_steps(self, infra_env_id: str, host_id: str, timestamp: int) -> dict[str, object]:
        self.polls.append(time.monotonic())
        if len(self.polls) == self.wanted:
            self.stop.set()
        return {"next_instruction_seconds": self.every, "instructions": []}


class _SlowToWarmRunner:
    """A step runner whose fork server takes ``seconds`` to start (a loaded machine)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def warm_up(self) -> None:
        time.sleep(self.seconds)

    def close(self) -> None:
        pass


def test_the_fork_servers_start_does_not_push_the_next_poll_back(tmp_path: Path) -> None:
    """The next poll is due next_instruction_seconds after this one's answer came, as in the Go agent (whose
    handling of the steps only starts goroutines): the fork server's start after the first poll (3 s here) runs
    inside that wait, not before it."""
    from agent.daemon import Daemon

    seconds = 3.0
    config = AgentConfig(url="http://service.invalid", infra_env_id=IE, host_id=HOST, token="tok",
                         state_dir=str(tmp_path / "state"), shutdown_grace=1.0)
    daemon = Daemon(config, runner=_SlowToWarmRunner(seconds))  # type: ignore[arg-type]
    service = _Service(daemon.stop, 2, seconds)
    daemon.client = daemon.registrar.client = service  # type: ignore[assignment]
    thread = threading.Thread(target=daemon.run, daemon=True)  # not the main thread: no signal handlers
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    first, second = service.polls
    # without the change: the start, then the whole wait (6 s); with it, the wait alone, however slow the start
    assert seconds <= second - first < 2 * seconds - 1


_UNKNOWN_STEP = """
import json, sys
from agent.config import AgentConfig
from agent.runner import StepRunner
reply = StepRunner(AgentConfig()).run("Step-not-exists", "wrong-step", [])
print(json.dumps({"reply": reply.to_wire(), "modules": sorted(sys.modules)}))
"""


def test_an_unknown_step_type_is_answered_without_the_fork_servers_client() -> None:
    """The Go suite's ``Step not exists`` wants the reply within the second that also holds the register and
    the poll: it is answered before agent.forks (and subprocess) is loaded."""
    out = subprocess.run([sys.executable, "-c", _UNKNOWN_STEP], capture_output=True, text=True, check=True,
                         timeout=60)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["reply"] == {"step_id": "wrong-step", "step_type": "Step-not-exists", "exit_code": -1,
                             "error": "failed to find action for step type Step-not-exists"}
    assert [m for m in ("agent.forks", "subprocess") if m in seen["modules"]] == []


def test_a_reply_is_posted_before_it_is_written_to_the_history(tmp_path: Path) -> None:
    from agent.daemon import Daemon
    from agent.runner import Reply

    state = tmp_path / "state"
    state.mkdir()
    history = state / "history.jsonl"
    posted: list[bool] = []

    class Client:
        def post_reply(self, infra_env_id: str, host_id: str, reply: dict[str, object]) -> None:
            posted.append(history.exists())

    config = AgentConfig(url="http://service.invalid", infra_env_id=IE, host_id=HOST, state_dir=str(state))
    daemon = Daemon(config, client=Client(), runner=_SlowToWarmRunner(0))  # type: ignore[arg-type]
    daemon._finished(Reply("wrong-step", "Step-not-exists", -1, "", "failed to find action"), 0.01)
    assert posted == [False]
    assert json.loads(history.read_text())["step_id"] == "wrong-step"
