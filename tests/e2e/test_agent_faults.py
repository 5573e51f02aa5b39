"""The agent under hostile answers and violent deaths: it never crashes, leaks a secret, grows without bound or
leaves a process behind (issue 11), and it answers every instruction exactly once (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest

from agent.config import AgentConfig
from agent.daemon import Daemon
from agent.runner import MARK_ENV
from common.errors import ServiceResponseError, TransportError
from common.limits import MAX_ERROR_CHARS, MAX_LOG_CHARS
from tests.support.hostile import Answer, HostileService
from tests.support.service import RefService, start_agent

HOST_ID = "11111111-2222-3333-4444-555555555555"
IE = "22222222-3333-4444-5555-666666666666"


def _step(step_id: str, step_type: str, *args: object) -> dict[str, object]:
    return {"step_id": step_id, "step_type": step_type, "args": list(args)}


def test_malformed_poll_answers_are_logged_backed_off_and_bad_instructions_answered(
        hostile: HostileService, tmp_path: Path, sample_plugins: Path) -> None:
    hostile.answer(
        Answer(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        Answer(b"[]"),
        Answer(b'{"next_instruction_seconds": "10"}'),
        Answer(b'{"instructions": {"step_id": "x"}}'),
        Answer(b'{"instructions": [], "post_step_action": 7}'),
        Answer(b'{"instructions": [{"step_type": "sample-echo", "step_id": "trunc'),
        Answer(b'{"instructions": []}', fault="truncated"),
        Answer.steps(["inventory", 5,
                      {"step_id": "args-number", "step_type": "sample-echo", "args": 5},
                      {"step_id": "no-type"},
                      _step("good", "sample-echo", json.dumps({"message": "still runs"}))]),
    )
    with start_agent(hostile.url, IE, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        good = hostile.wait_reply("good", timeout=60)
        assert agent.alive()
        log = agent.log
    assert json.loads(good["output"])["echo"] == "still runs"
    numbers = [r for r in hostile.replies if r["step_id"] == "args-number"]
    assert len(numbers) == 1 and numbers[0]["exit_code"] == -1
    assert "'args' must be a list of strings, got a number (5)" in numbers[0]["error"]
    (no_type,) = [r for r in hostile.replies if r["step_id"] == "no-type"]
    assert no_type["exit_code"] == -1 and "'step_type' must be a non-empty string" in no_type["error"]
    assert "Traceback" not in log
    assert "got 41 bytes of text/html that are not JSON: '<html><body>502 Bad Gateway</body></html>'" in log
    assert "expected a Steps object from GET" in log and "got a list ([])" in log
    assert "expected 'next_instruction_seconds' to be a number" in log and "a string (\"10\")" in log
    assert "expected 'instructions' to be a list" in log
    assert "expected 'post_step_action' to be a string" in log
    assert "the answer broke off" in log or "that are not JSON" in log
    assert "instruction ignored, it cannot be answered: an instruction must be an object, got a string" in log
    assert log.count("failed to get next steps") >= 6


def test_register_back_off_survives_a_thousand_refusals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Refusing:
        calls = 0

        def new_request_id(self) -> str:
            return "r"

        def register(self, host_id: str) -> dict[str, object]:
            self.calls += 1
            if self.calls <= 1100:
                raise ServiceResponseError(401, "unauthorized")
            return {"id": host_id}

    client = Refusing()
    daemon = Daemon(AgentConfig(url="http://127.0.0.1:1", infra_env_id=IE, host_id=HOST_ID, state_dir=str(tmp_path)),
                    client=client)  # type: ignore[arg-type]
    delays: list[float] = []

    def sleep(seconds: float) -> bool:
        delays.append(seconds)
        return True

    monkeypatch.setattr(daemon.life, "sleep", sleep)  # the registrar sleeps through the daemon's lifecycle
    assert daemon._register() is True
    assert client.calls == 1101 and max(delays) == 300.0


def test_a_huge_argument_gives_a_bounded_reply_log_line_and_history(
        hostile: HostileService, tmp_path: Path, sample_plugins: Path) -> None:
    huge = "x" * (20 * 1024 * 1024)
    hostile.answer(Answer.steps([_step("huge", "sample-echo", huge, "second")]))
    state = tmp_path / "state"
    with start_agent(hostile.url, IE, args=["--host-id", HOST_ID], log=tmp_path / "agent.log",
                     state_dir=state) as agent:
        reply = hostile.wait_reply("huge", timeout=60)
        agent.wait_log("huge) finished", timeout=20)
    assert reply["exit_code"] == -1 and "accepts only 1 params" in reply["error"]
    assert len(reply["error"]) <= MAX_ERROR_CHARS and "characters cut by the agent" in reply["error"]
    longest = max(len(line) for line in (tmp_path / "agent.log").read_text().splitlines())
    assert longest <= MAX_LOG_CHARS + 200
    assert (state / "history.jsonl").stat().st_size < 64 * 1024


def test_a_url_password_is_never_logged(hostile: HostileService, tmp_path: Path) -> None:
    url = hostile.url.replace("http://", "http://admin:s3cret-pw@")
    with start_agent(url, IE, args=["--host-id", HOST_ID], log=tmp_path / "up.log") as up:
        up.wait_log("registered host", timeout=20)
    down = "http://admin:s3cret-pw@127.0.0.1:1"
    with start_agent(down, IE, args=["--log-level", "debug"], log=tmp_path / "down.log") as agent:
        # its transport retries alone sleep 12 to 14 s before this (0, then 4 and 8 s with up to 1 s of jitter each)
        agent.wait_log("Error registering host", timeout=60)
    assert "s3cret-pw" not in up.log and "s3cret-pw" not in agent.log
    assert "http://admin:***@127.0.0.1:1" in agent.log


@pytest.fixture(scope="module")
def bad_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a certificate for 127.0.0.1 that expired in 2020, and a valid one for another name."""
    d = tmp_path_factory.mktemp("badpki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=fault CA")
    (d / "ca.cnf").write_text("[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n"
                              "default_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n")
    (d / "index.txt").write_text("")
    (d / "serial").write_text("01\n")
    for name, san, dates in (("expired", "IP:127.0.0.1", ["-startdate", "20200101000000Z", "-enddate",
                                                           "20200102000000Z"]),
                             ("other", "DNS:other.example", ["-days", "2"])):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", f"{name}.csr",
            "-out", f"{name}.pem", "-extfile", f"{name}.ext", "-notext", *dates)
    return {"ca": d / "ca.pem", "expired": d / "expired", "other": d / "other"}


@pytest.mark.parametrize(("which", "words"), [("expired", "validity period"), ("other", "subjectAltName")])
def test_tls_hints_name_the_real_cause(bad_certs: dict[str, Path], which: str, words: str) -> None:
    from common.service_client import ServiceClient

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Quiet)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{bad_certs[which]}.pem", f"{bad_certs[which]}.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        client = ServiceClient(AgentConfig(url=f"https://127.0.0.1:{server.server_address[1]}", infra_env_id=IE,
                                           cacert=str(bad_certs["ca"])))
        with pytest.raises(TransportError) as info:
            client.register(HOST_ID)
    finally:
        thread.join(10)
        server.server_close()
    assert words in (info.value.hint or "") and "--cacert" not in (info.value.hint or "")


def _step_processes(agent_pid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.Process(agent_pid).children(recursive=True):
        try:  # a child may end (a zombie, or reaped) between the listing and the read of its command line
            if p.name().startswith("step ") or "agent.fork_server" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_steps_and_their_grandchildren_die_with_a_sigkilled_agent(service: RefService, tmp_path: Path,
                                                                  sample_plugins: Path) -> None:
    c = service.create_cluster(control_plane_count=1)
    ie = service.create_infra_env(cluster_id=c["id"])["id"]
    pid_file = tmp_path / "grandchild.pid"
    with start_agent(service.url, ie, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        service.wait_host(ie, lambda h: h["id"] == HOST_ID)
        service.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{HOST_ID}/instructions", expected=201,
                     json={"step_type": "sample-spawn-hang", "args": [str(pid_file), "300"]})
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the step never started its grandchild"
            time.sleep(0.1)
        watched = [p.pid for p in _step_processes(agent.proc.pid)] + [int(pid_file.read_text())]
        os.kill(agent.proc.pid, signal.SIGKILL)
        agent.wait(10)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in watched):
            assert time.monotonic() < deadline, f"survived the agent: {[p for p in watched if not _gone(p)]}"
            time.sleep(0.1)


def test_a_restarted_agent_kills_what_its_previous_life_left(hostile: HostileService, tmp_path: Path) -> None:
    state = tmp_path / "state"
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                                env={**os.environ, MARK_ENV: str(state.absolute())})
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                                 env={**os.environ, MARK_ENV: str(tmp_path / "another-agent")})
    try:
        with start_agent(hostile.url, IE, args=["--host-id", HOST_ID], log=tmp_path / "agent.log",
                         state_dir=state) as agent:
            agent.wait_log("previous run of the agent left behind", timeout=20)
            assert leftover.wait(10) == -signal.SIGKILL
            assert unrelated.poll() is None
    finally:
        for proc in (leftover, unrelated):
            proc.kill()
            proc.wait()


def test_state_files_are_private(hostile: HostileService, tmp_path: Path, sample_plugins: Path) -> None:
    state = tmp_path / "state"
    hostile.answer(Answer.steps([_step("echo", "sample-echo", json.dumps({"message": "pull-secret-ish"}))]))
    old = os.umask(0o022)
    try:
        with start_agent(hostile.url, IE, args=["--host-id", HOST_ID], log=tmp_path / "agent.log",
                         state_dir=state) as agent:
            hostile.wait_reply("echo")
            agent.wait_log("echo) finished")
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "history.jsonl").stat().st_mode) == 0o600
