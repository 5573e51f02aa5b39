"""The agent daemon end to end: real `agent` and reference-service processes talking HTTP on loopback."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from reference_service import spec
from tests.support.loopback_http import serving
from tests.support.service import RefService, start_agent, start_service

AGENT_IMAGE = "quay.io/edge-infrastructure/assisted-installer-agent:latest"
HOST_ID = "11111111-2222-3333-4444-555555555555"


def _setup(svc: RefService, **cluster: Any) -> str:
    c = svc.create_cluster(control_plane_count=1, **cluster)
    return str(svc.create_infra_env(cluster_id=c["id"])["id"])


def _queue(svc: RefService, ie: str, step_type: str, *args: str) -> dict[str, Any]:
    return svc.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{HOST_ID}/instructions", expected=201,  # type: ignore
                    json={"step_type": step_type, "args": list(args)})


def _force_status(svc: RefService, ie: str, status: str) -> None:
    svc.call("PUT", f"/api/reference/infra-envs/{ie}/hosts/{HOST_ID}/status", json={"status": status})


def assert_agent_requests_valid(svc: RefService) -> int:
    """Every body the agent sent validates against the spec: registration, step replies and their outputs."""
    checked = 0
    for req in svc.requests_seen():
        if req["method"] == "POST" and req["path"].endswith("/hosts"):
            assert spec.errors("host-create-params", json.loads(req["body"])) == [], req
        elif req["method"] == "POST" and req["path"].endswith("/instructions"):
            reply = json.loads(req["body"])
            if reply["step_type"].startswith("sample-"):
                reply = {**reply, "step_type": "execute"}
            assert spec.errors("step-reply", reply) == [], req
            model = spec.STEP_OUTPUT_MODELS.get(reply["step_type"])
            if model and reply.get("output") and not reply.get("exit_code"):
                assert spec.errors(model, json.loads(reply["output"])) == [], reply
        elif req["method"] == "PUT" and req["path"].endswith("/progress"):
            assert spec.errors("host-progress", json.loads(req["body"])) == [], req
        else:
            continue
        assert req["headers"].get("discovery_agent_version") == AGENT_IMAGE
        assert req["headers"].get("x-request-id")
        checked += 1
    return checked


def _agent_requests(svc: RefService) -> list[dict[str, Any]]:
    """What the agent sent: registrations, polls and replies (not the test's own calls)."""
    return [r for r in svc.requests_seen() if r["path"].endswith("/instructions")
            or (r["method"] == "POST" and r["path"].endswith("/hosts"))]


def _polled_after_register(seen: list[dict[str, Any]], registers: int) -> bool:
    """Whether the service has answered a poll after the agent's ``registers``-th register."""
    posts = [i for i, r in enumerate(seen) if r["method"] == "POST" and r["path"].endswith("/hosts")]
    return len(posts) >= registers and any(
        r["path"].endswith("/instructions") and r["status"] == 200 for r in seen[posts[registers - 1]:])


def test_registers_runs_steps_and_registers_again_when_told_to_exit(
        service: RefService, tmp_path: Path, sample_plugins: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        host = service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        assert host["discovery_agent_version"] == AGENT_IMAGE
        _queue(service, ie, "sample-echo", json.dumps({"message": "hello"}))
        (reply,) = service.wait_replies(HOST_ID, "sample-echo")
        assert reply["exit_code"] == 0 and json.loads(reply["output"])["echo"] == "hello"
        # the real service answers binding hosts with post_step_action exit; the Go agent's runner exits and its
        # agent registers again at once, in the same process
        service.inject_fault("GET", r"/instructions$", 200, count=1,
                             body={"next_instruction_seconds": 0, "post_step_action": "exit", "instructions": []})
        agent.wait_log("the service asked the agent to exit: registering again", timeout=20)
        service.wait_requests(lambda seen: _polled_after_register(seen, 2))  # polling under the new registration
        assert agent.alive()
    seen = service.requests_seen()
    registers = [i for i, r in enumerate(seen) if r["method"] == "POST" and r["path"].endswith("/hosts")]
    assert len(registers) == 2, [(r["method"], r["status"]) for r in seen]
    after = [r for r in seen[registers[1]:] if r["method"] == "GET"]
    assert after and after[0]["status"] == 200  # polling again under the new registration
    assert seen[registers[1]]["received_at"] - seen[registers[1] - 1]["received_at"] < 1.0  # at once
    assert assert_agent_requests_valid(service) >= 2


def test_an_exit_answer_after_every_registration_is_backed_off(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log"):
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        service.inject_fault("GET", r"/instructions$", 200, count=1000,
                             body={"next_instruction_seconds": 0, "post_step_action": "exit", "instructions": []})
        time.sleep(5)
    registers = [r for r in service.requests_seen() if r["method"] == "POST" and r["path"].endswith("/hosts")]
    # at once, then 0.5 s x1.5 with jitter: 0.25 + 0.375 + 0.56 + 0.84 + 1.27 + 1.9 > 5 s at the least
    assert 3 <= len(registers) <= 8, len(registers)


def test_inventory_reply_is_stored_and_valid(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, log=tmp_path / "agent.log"):
        host = service.wait_host(ie, lambda h: bool(h.get("inventory")), timeout=40)
    inventory = json.loads(host["inventory"])
    assert spec.errors("inventory", inventory) == []
    assert host["status"] != "discovering"
    assert assert_agent_requests_valid(service) >= 2


def test_identical_successful_replies_are_posted_once(service: RefService, tmp_path: Path,
                                                      sample_plugins: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        _queue(service, ie, "sample-echo", json.dumps({"message": "same"}))
        service.wait_replies(HOST_ID, "sample-echo", count=1)
        # Only once the first run has replied: an instruction that arrives while a run with the same arguments
        # is still going is answered by that run (docs/step-overlap.md), and there would be no second run.
        _queue(service, ie, "sample-echo", json.dumps({"message": "same"}))
        agent.wait_log("running sample-echo (", timeout=60, count=2)
        agent.wait_log("Result for sample-echo already exists in assisted service", timeout=60)
        _queue(service, ie, "sample-echo", json.dumps({"message": "different"}))
        service.wait_replies(HOST_ID, "sample-echo", count=2)
    outputs = [json.loads(r["output"])["echo"] for r in service.replies(HOST_ID, "sample-echo")]
    assert outputs == ["same", "different"]


def test_unknown_step_and_bad_arguments_are_replies_not_crashes(service: RefService, tmp_path: Path,
                                                                sample_plugins: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        _queue(service, ie, "sample-nonexistent")
        _queue(service, ie, "sample-echo", "{not json")
        _queue(service, ie, "sample-broken")
        unknown = service.wait_replies(HOST_ID, "sample-nonexistent")[0]
        bad = service.wait_replies(HOST_ID, "sample-echo")[0]
        broken = service.wait_replies(HOST_ID, "sample-broken")[0]
        assert agent.alive()
    assert unknown["exit_code"] == -1
    assert unknown["error"] == "failed to find action for step type sample-nonexistent"
    assert bad["exit_code"] == -1 and "not valid JSON" in bad["error"]
    assert broken["exit_code"] == -1 and "failed to load" in broken["error"]


def _running_step_processes(daemon_pid: int) -> list[psutil.Process]:
    running = []
    for p in psutil.Process(daemon_pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.name().startswith("step "):  # named by agent.fork_server
                running.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass  # gone, or exited and not yet reaped
    return running


def test_hanging_raising_crashing_and_spawning_steps_do_not_hurt_the_daemon(
        service: RefService, tmp_path: Path, sample_plugins: Path) -> None:
    ie = _setup(service)
    pid_file = tmp_path / "grandchild.pid"
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        for step in ("sample-hang", "sample-raise", "sample-crash"):
            _queue(service, ie, step)
        _queue(service, ie, "sample-spawn-hang", str(pid_file))
        hang = service.wait_replies(HOST_ID, "sample-hang")[0]
        raised = service.wait_replies(HOST_ID, "sample-raise")[0]
        crashed = service.wait_replies(HOST_ID, "sample-crash")[0]
        spawned = service.wait_replies(HOST_ID, "sample-spawn-hang")[0]
        # the daemon is alive and still serving: a new step still runs
        _queue(service, ie, "sample-echo", json.dumps({"message": "still here"}))
        service.wait_replies(HOST_ID, "sample-echo")
        assert agent.alive()
        grandchild = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the step's grandchild survived the step's timeout"
            time.sleep(0.1)
        # A step's reply is posted when its process has reported, a moment before that process has exited and
        # been reaped: leftovers are what is still running once that moment has passed.
        deadline = time.monotonic() + 5
        while (leftovers := _running_step_processes(agent.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftovers == []
    assert hang["exit_code"] == 124 and "timed out after 1 seconds" in hang["error"]
    assert raised["exit_code"] == -1 and "RuntimeError: the plugin has a bug" in raised["error"]
    assert crashed["exit_code"] == 3 and "before reporting a result" in crashed["error"]
    assert spawned["exit_code"] == 124 and "killed" in spawned["error"]


@pytest.mark.parametrize("status", [401, 403, 404, 409])
def test_register_refusals_back_off_and_recover(service: RefService, tmp_path: Path, status: int) -> None:
    ie = _setup(service)
    service.inject_fault("POST", r"/v2/infra-envs/[^/]+/hosts$", status, count=2)
    with start_agent(service.url, ie, log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: True, timeout=30)
        assert agent.alive()
    log = agent.log
    assert f"[{status}]" in log and "hint:" in log
    assert log.count("cannot register host") == 2
    registers = [r for r in service.requests_seen() if r["method"] == "POST" and r["path"].endswith("/hosts")]
    assert [r["status"] for r in registers] == [status, status, 201]


def test_register_server_error_retries_every_interval(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    service.inject_fault("POST", r"/v2/infra-envs/[^/]+/hosts$", 500, count=2)
    with start_agent(service.url, ie, log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: True, timeout=30)
    assert agent.log.count("Error registering host: [500]") == 2


def test_poll_errors_back_off_and_404_registers_again(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        service.inject_fault("GET", r"/instructions$", 503, count=3)
        service.inject_fault("GET", r"/instructions$", 401, count=1)
        agent.wait_log("failed to get next steps: [401]", timeout=30)
        service.inject_fault("GET", r"/instructions$", 404, count=1)
        agent.wait_log("registering again", timeout=30)
        agent.wait_log("registered host", timeout=30)
        service.wait_requests(lambda seen: _polled_after_register(seen, 2))  # polling under the new registration
        assert agent.alive()
    polls = [r["status"] for r in service.requests_seen() if r["method"] == "GET"]
    assert 401 in polls and 404 in polls and polls[-1] == 200
    registers = [r for r in service.requests_seen() if r["method"] == "POST" and r["path"].endswith("/hosts")]
    assert len(registers) == 2


def test_polls_answered_404_back_off_instead_of_a_register_storm(service: RefService, tmp_path: Path) -> None:
    """A host deleted in the UI (or a proxy answering 404): the Go runner backs nothing off, it freezes; ours
    registers again after the poll back-off (0.5 s x1.5, jittered by half), so the pairs slow down."""
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        start = time.time()
        service.inject_fault("GET", r"/instructions$", 404, count=1000)
        time.sleep(6)
        assert agent.alive()
    seen = [r for r in service.requests_seen() if r["received_at"] >= start]
    # A poll answered before the fault was in place is not part of the storm (a loaded machine sends one).
    first_404 = next(i for i, r in enumerate(seen) if r["method"] == "GET" and r["status"] == 404)
    seen = seen[first_404:]
    registers = [r for r in seen if r["method"] == "POST" and r["path"].endswith("/hosts")]
    polls = [r for r in seen if r["method"] == "GET"]
    # waits 0.25-0.75, 0.375-1.125, 0.56-1.7, 0.84-2.5, 1.27-3.8, ...: at most 7 cycles in 6 s (was ~2,000)
    assert 2 <= len(registers) <= 7 and len(polls) <= len(registers) + 1, (len(registers), len(polls))
    gaps = [b["received_at"] - a["received_at"] for a, b in itertools.pairwise(polls)]
    assert all(g >= 0.2 for g in gaps), gaps
    assert agent.log.count("does not know host") >= 2


def test_a_runner_command_without_args_waits_retry_seconds_and_registers_without_polling(
        service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    service.inject_fault("POST", r"/v2/infra-envs/[^/]+/hosts$", 201, count=1,
                         body={"id": HOST_ID, "kind": "Host", "next_step_runner_command": {"retry_seconds": 3}})
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID, timeout=30)
        agent.wait_log("registered host", timeout=10)
        time.sleep(0.5)
    seen = _agent_requests(service)
    kinds = [("register" if r["path"].endswith("/hosts") else r["method"]) for r in seen]
    assert kinds[:2] == ["register", "register"], kinds  # no poll with an id the agent made up
    assert seen[1]["received_at"] - seen[0]["received_at"] >= 2.9
    assert "next step runner cmd accepts 1 params in args, given args []" in agent.log
    assert "registering again in 3s" in agent.log


@pytest.mark.parametrize(("command", "words"), [
    (None, "Incompatible server version"),
    ({"args": [json.dumps({"agent_version": AGENT_IMAGE, "host_id": "not-a-uuid", "infra_env_id": HOST_ID})]},
     "host_id in body must be of type uuid"),
    ({"args": [], "retry_seconds": -1}, "given args []"),
])
def test_an_unusable_runner_command_waits_an_hour(service: RefService, tmp_path: Path, command: Any,
                                                  words: str) -> None:
    ie = _setup(service)
    body: dict[str, Any] = {"id": HOST_ID, "kind": "Host"}
    if command is not None:
        body["next_step_runner_command"] = command
    service.inject_fault("POST", r"/v2/infra-envs/[^/]+/hosts$", 201, count=1, body=body)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        agent.wait_log("registering again in 3600s", timeout=20)
        time.sleep(2)
        assert agent.alive()
    assert words in agent.log
    assert [r["method"] for r in _agent_requests(service)] == ["POST"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_service_down_at_start_and_restarted_mid_loop_loses_nothing(tmp_path: Path, sample_plugins: Path) -> None:
    port = _free_port()
    db = tmp_path / "state.db"
    url = f"http://127.0.0.1:{port}"
    with start_service(tmp_path, port=port, db=db) as svc:
        ie = _setup(svc)
    with start_agent(url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        # the service is down: the agent keeps trying (its transport retries alone sleep 12 to 14 s first)
        agent.wait_log("Error registering host", timeout=60)
        with start_service(tmp_path, port=port, db=db) as svc:
            svc.wait_host(ie, lambda h: h["id"] == HOST_ID)
            _queue(svc, ie, "sample-echo", json.dumps({"message": "across a restart", "sleep": 2}))
            agent.wait_log("running sample-echo", timeout=20)
        # the service is down while the step finishes; its reply must arrive after the restart
        agent.wait_log("not delivered", timeout=20)
        with start_service(tmp_path, port=port, db=db) as svc:
            (reply,) = svc.wait_replies(HOST_ID, "sample-echo", timeout=30)
            assert json.loads(reply["output"])["echo"] == "across a restart"
            assert agent.alive()


def test_sd_notify_ready_status_and_watchdog(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    got: list[str] = []
    try:
        with start_agent(service.url, ie, env=env, log=tmp_path / "agent.log"):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (
                    any("READY=1" in m for m in got) and sum("WATCHDOG=1" in m for m in got) >= 2
                    and any("registered as host" in m for m in got)):
                got.append(sock.recv(4096).decode())
    finally:
        sock.close()
    assert any(m.startswith("READY=1") for m in got)
    assert any("STATUS=registered as host" in m for m in got)
    assert sum("WATCHDOG=1" in m for m in got) >= 2


@pytest.mark.parametrize(("grace", "sleep", "expect"), [
    ("10", 2, (0, "")),  # finishes within the grace period: its real reply is posted
    ("1", 60, (143, "agent is stopping")),  # outlives it: killed, and the reply says so
])
def test_sigterm_lets_running_steps_finish_within_the_grace_period(
        service: RefService, tmp_path: Path, sample_plugins: Path, grace: str, sleep: int,
        expect: tuple[int, str]) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID, "--shutdown-grace", grace],
                     log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        _queue(service, ie, "sample-echo", json.dumps({"message": "in flight", "sleep": sleep}))
        agent.wait_log("running sample-echo", timeout=20)
        agent.signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    (reply,) = service.replies(HOST_ID, "sample-echo")
    assert reply["exit_code"] == expect[0] and expect[1] in (reply["error"] or "")
    if expect[0] == 0:
        assert json.loads(reply["output"])["echo"] == "in flight"


def test_token_is_sent_and_never_logged(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        ie = _setup(svc)
        token = svc.token(ie)
        with start_agent(svc.url, ie, env={"PULL_SECRET_TOKEN": token}, log=tmp_path / "agent.log",
                         args=["--log-level", "debug"]) as agent:
            svc.wait_host(ie, lambda h: True)
        with start_agent(svc.url, ie, env={"PULL_SECRET_TOKEN": "wrong-" + token},
                         log=tmp_path / "agent-bad.log") as bad:
            bad.wait_log("cannot register host", timeout=20)
        sent = {r["headers"].get("x-secret-key") for r in svc.requests_seen()} - {None}
    assert sent == {"***"}, "the test-mode journal stores no token"
    assert token not in agent.log and token not in bad.log
    assert "the service rejected the agent's token" in bad.log


def test_agent_conf_supplies_missing_flags(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    conf = tmp_path / "agent.conf"
    conf.write_text(f"# written by the discovery image\nURL={service.url}\nINFRA_ENV_ID=\"{ie}\"\nINTERVAL=1\n"
                    f"HOST_ID={HOST_ID}\n")
    import subprocess

    from tests.support.service import BIN, stop_process

    log = tmp_path / "agent.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(BIN / "agent"), "--config", str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "AGENT_STATE_DIR": str(tmp_path / "state")},
                                start_new_session=True)
    try:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
    finally:
        stop_process(proc)


def test_instructions_of_one_poll_run_concurrently(service: RefService, tmp_path: Path,
                                                   sample_plugins: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log"):
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        _queue(service, ie, "sample-echo", json.dumps({"message": "slow", "sleep": 3}))
        _queue(service, ie, "sample-raise")  # queued second, in the same poll
        service.wait_replies(HOST_ID, "sample-echo", timeout=30)
    order = [r["step_type"] for r in service.replies(HOST_ID) if r["step_type"].startswith("sample-")]
    assert order == ["sample-raise", "sample-echo"]


def test_a_wrong_path_404_is_not_taken_for_a_missing_infra_env(tmp_path: Path) -> None:
    """A web server answering 404 pages (a wrong path in --url) is retried every interval, as the Go agent
    does when the 404 is not the API's, and the log says to check the path, not the infra-env."""
    with serving() as server:
        server.fallback = (404, b"<html><body><h1>404 Not Found</h1></body></html>", {"Content-Type": "text/html"})
        with start_agent(server.url + "/wrong/prefix", HOST_ID, log=tmp_path / "agent.log") as agent:
            agent.wait_log("check the path in --url", timeout=30)
            time.sleep(2.5)
    log = agent.log
    assert "[404] 404 Not Found" in log and "does not exist" not in log
    assert log.count("check the path in --url") >= 2  # every --interval (1 s), not a growing back-off


def test_https_to_a_plain_http_port_says_so_in_go_words(service: RefService, tmp_path: Path) -> None:
    url = service.url.replace("http://", "https://")
    with start_agent(url, _setup(service), log=tmp_path / "agent.log") as agent:
        agent.wait_log("Error registering host", timeout=60)
    log = agent.log
    assert "http: server gave HTTP response to HTTPS client" in log and "use http:// in --url" in log
    assert "--cacert" not in log


def test_the_units_sigterm_kills_a_step_and_no_reply_is_posted_for_it_as_the_go_agent(
        service: RefService, tmp_path: Path, sample_plugins: Path) -> None:
    """The ISO's agent.service has KillMode=control-group: systemd sends SIGTERM to every process of the unit,
    the steps' too. The Go agent then posts nothing for the step that was killed; neither does this one."""
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        _queue(service, ie, "sample-echo", json.dumps({"message": "killed with the unit", "sleep": 30}))
        agent.wait_log("running sample-echo", timeout=20)
        time.sleep(1.0)
        unit = [psutil.Process(agent.proc.pid), *psutil.Process(agent.proc.pid).children(recursive=True)]
        for proc in unit:  # what systemd's control-group kill does: every process at once
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert service.replies(HOST_ID, "sample-echo") == [], agent.log[-2000:]
    assert "no reply, as the Go agent" in agent.log
