"""The agent among hostile networks and neighbours (issue 26): its token goes only to the service's origin, one
agent per state directory, no symlink followed, bounded bodies, no URL password in what it sends or keeps, no
option smuggled to podman, no wedged step type, a prompt exit on SIGTERM while the service is unreachable."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.dispatch import Dispatcher
from agent.launcher import Launcher
from agent.notify import Notifier
from agent.runner import Reply, StepRunner
from agent.state import History
from common.answers import Instruction
from common.errors import InvalidStepArguments
from common.host import Host
from common.podman import check_reference
from steps import registry
from steps.base import StepContext
from steps.install import _check_image
from steps.logs_gather import Archive
from steps.write_image.errors import WriteFailed
from steps.write_image.sources import open_source
from tests.support.hostile import Answer, HostileService
from tests.support.service import start_agent

pytestmark = pytest.mark.no_child_left  # the fork server of an in-process runner ends with its test

HOST_ID = "11111111-2222-3333-4444-555555555555"
IE = "22222222-3333-4444-5555-666666666666"
TOKEN = "agent-secret-token-26"
AGENT = str(Path(sys.executable).parent / "agent")


class Server:
    """A loopback HTTP server whose GET and POST are answered by ``handle(handler)``; it records each request."""

    def __init__(self, handle: object) -> None:
        seen: list[tuple[str, str, dict[str, str]]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                seen.append((self.command, self.path, dict(self.headers.items())))
                handle(self)  # type: ignore[operator]

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _redirector(target: str) -> Server:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(307)  # 307 keeps the method and body: the registration follows it
        h.send_header("Location", target + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return Server(handle)


# -- the token -----------------------------------------------------------------------------------------------
def test_the_token_does_not_follow_a_redirect_to_another_origin(hostile: HostileService, tmp_path: Path) -> None:
    front = _redirector(hostile.url)  # same host, another port: another origin
    try:
        with start_agent(front.url, IE, args=["--host-id", HOST_ID], env={"PULL_SECRET_TOKEN": TOKEN},
                         log=tmp_path / "agent.log") as agent:
            deadline = time.monotonic() + 30
            while hostile.polls < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert agent.alive()
    finally:
        front.close()
    assert hostile.polls >= 2, "the agent registered and polled through the redirect"
    assert all("X-Secret-Key" in headers for _m, _p, headers in front.seen), "the service's origin gets it"
    leaked = [(m, p) for m, p, headers in hostile.seen if TOKEN in json.dumps(headers)]
    assert not leaked, f"the token went to another origin: {leaked[:3]}"


def test_the_token_goes_to_the_services_origin_only_on_every_hop(tmp_path: Path) -> None:
    from common.http_session import ServiceSession

    sink = Server(lambda h: (h.send_response(200), h.send_header("Content-Length", "0"), h.end_headers()))
    same = _redirector(sink.url)
    try:
        host, port = same.url.rsplit(":", 1)
        for service_url, expected in ((same.url, False), (sink.url, True), (f"http://LOCALHOST:{port}", False)):
            sink.seen.clear()
            session = ServiceSession(service_url, TOKEN)
            assert session.get(same.url + "/x", timeout=10).status_code == 200
            assert ("X-Secret-Key" in sink.seen[-1][2]) is expected, service_url
        # A service on http://127.0.0.1:80 redirected to https://127.0.0.1 or to :8080 is another origin too
        from common.http_session import origin

        assert origin("http://127.0.0.1") == origin("HTTP://127.0.0.1:80/x")
        assert origin("http://127.0.0.1") != origin("https://127.0.0.1")
        assert origin("http://127.0.0.1") != origin("http://127.0.0.1:8080")
        assert host
    finally:
        same.close()
        sink.close()


# -- one agent per state directory ---------------------------------------------------------------------------
def test_a_second_agent_on_the_same_state_directory_exits_and_leaves_the_first_ones_step(
        hostile: HostileService, tmp_path: Path, sample_plugins: Path) -> None:
    state = tmp_path / "state"
    hostile.answer(Answer.steps([{"step_id": "long", "step_type": "sample-echo",
                                  "args": [json.dumps({"message": "survived", "sleep": 6})]}]))
    with start_agent(hostile.url, IE, args=["--host-id", HOST_ID], state_dir=state,
                     log=tmp_path / "first.log") as first:
        deadline = time.monotonic() + 30
        while not _steps_of(first.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _steps_of(first.proc.pid), "the first agent's step is running"
        second = subprocess.run([AGENT, "--url", hostile.url, "--infra-env-id", IE, "--host-id", HOST_ID],
                                env={**os.environ, "AGENT_STATE_DIR": str(state), "AGENT_CONFIG": "/nonexistent"},
                                capture_output=True, text=True, timeout=60)
        reply = hostile.wait_reply("long", timeout=40)
        assert first.alive()
    assert second.returncode == 1, second.stderr
    assert f"another agent (pid {first.proc.pid}) is running with the state directory {state}" in second.stderr
    assert reply.get("exit_code", 0) == 0 and json.loads(reply["output"])["echo"] == "survived"


def _steps_of(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def test_the_history_does_not_follow_a_symlink(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("untouched\n")
    target.chmod(0o644)
    (state / "history.jsonl").symlink_to(target)
    History(state).record(Reply("s1", "sample-echo", 0, '{"echo":"x"}'))
    assert target.read_text() == "untouched\n"
    assert target.stat().st_mode & 0o777 == 0o644


# -- bounded bodies ------------------------------------------------------------------------------------------
def _gzip_bomb(size: int) -> bytes:
    """``size`` zeros gzipped, made in 1 MiB pieces (this process stays small: its children's peak is measured)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    return b"".join([*(z.compress(zeros) for _ in range(size >> 20)), z.flush()])


@pytest.mark.parametrize("step", ["api-vip-connectivity-check", "tang-connectivity-check"])
def test_a_gzip_bomb_is_refused_at_the_bound_without_inflating_it(tmp_path: Path, step: str) -> None:
    bomb = _gzip_bomb(512 << 20)  # 512 KiB on the wire, 512 MiB inflated

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(bomb)))
        h.end_headers()
        h.wfile.write(bomb)

    srv = Server(handle)
    try:
        if step == "api-vip-connectivity-check":
            args = [json.dumps({"url": srv.url + "/config/worker"})]
        else:
            args = [json.dumps({"tang_servers": json.dumps([{"url": srv.url, "thumbprint": "t"}])})]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run([AGENT, "step", step, json.dumps(args), "--wire"], capture_output=True, text=True,
                              timeout=120)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        srv.close()
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "bytes accepted (decompressed)" in json.dumps(reply), reply
    assert peak_mib < 200 or before / 1024 >= 200, f"the step peaked at {peak_mib:.0f} MiB"


# -- URL passwords -------------------------------------------------------------------------------------------
def test_url_passwords_never_reach_a_reply_the_history_or_the_logs_archive(tmp_path: Path) -> None:
    url = "http://admin:s3cret-pw@127.0.0.1:1/images/rhcos.raw.xz"
    reply = Reply("w1", "write-image", -1, json.dumps({"source": url}),
                  f"cannot download the image from {url}: refused").bounded()
    assert "s3cret-pw" not in reply.output + reply.error
    assert json.loads(reply.output) == {"source": "http://admin:***@127.0.0.1:1/images/rhcos.raw.xz"}
    state = tmp_path / "state"
    History(state).record(reply)
    assert "s3cret-pw" not in (state / "history.jsonl").read_text()
    archive = Archive()
    archive.add("journal.log", f"agent[1]: podman run ... --url {url}\n".encode())
    with tarfile.open(fileobj=__import__("io").BytesIO(archive.close())) as tar:
        member = tar.extractfile("logs/journal.log")
        assert member is not None and b"s3cret-pw" not in member.read()


def test_the_write_image_failure_has_no_url_password() -> None:
    """The image path relative to a --url with a password: the download fails, the message says where, redacted."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    ctx = StepContext(host=Host.at("/"), config=AgentConfig(url=f"http://admin:s3cret-pw@127.0.0.1:{port}"))
    with pytest.raises(WriteFailed) as failed:
        open_source(ctx, "/images/rhcos.raw.xz")
    assert "s3cret-pw" not in failed.value.message and "admin:***@127.0.0.1" in failed.value.message


def test_the_launchers_status_line_has_no_url_password(hostile: HostileService, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    host_port = hostile.url.split("//", 1)[1]
    config = AgentConfig(url=f"http://admin:s3cret-pw@{host_port}", infra_env_id=IE, host_id=HOST_ID)
    os.environ["AGENT_STATE_DIR"] = str(tmp_path / "state")
    try:
        launcher = Launcher(config, notifier=Notifier(str(sock_path)))
        thread = threading.Thread(target=launcher.run, daemon=True)
        thread.start()
        first = sock.recv(4096).decode()
        launcher.life.request_stop("test over")
        thread.join(30)
    finally:
        del os.environ["AGENT_STATE_DIR"]
        sock.close()
    assert "READY=1" in first and "admin:***@" in first and "s3cret-pw" not in first


# -- image references ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("image", ["--entrypoint=/bin/sh", "-q", "quay.io/ocp/installer:4.16\n",
                                   "quay.io/ocp/installer:4.16\n--privileged", "quay.io/x\t:1"])
def test_image_references_that_podman_could_read_as_options_are_refused(image: str) -> None:
    with pytest.raises(InvalidStepArguments):
        check_reference("container-image-availability", image)
    with pytest.raises(InvalidStepArguments):
        _check_image("installer_image", image)
    check_reference("x", "quay.io/ocp/installer:4.16")
    _check_image("installer_image", "quay.io/ocp/installer@sha256:" + "a" * 64)


# -- a failing runner thread ---------------------------------------------------------------------------------
class _FailsOnce(StepRunner):
    def __init__(self) -> None:
        super().__init__(AgentConfig())
        self.calls = 0

    def run(self, step_type: str, step_id: str, args: list[str], **kw: object) -> Reply:
        self.calls += 1
        if self.calls == 1:
            raise OSError(24, "Too many open files")
        return super().run(step_type, step_id, args, **kw)  # type: ignore[arg-type]


def test_an_exception_in_a_runner_thread_still_yields_a_reply_and_frees_the_type(
        sample_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(sample_plugins))
    registry.available.cache_clear()
    replies: list[Reply] = []
    runner = _FailsOnce()
    d = Dispatcher(runner, lambda r, _d: replies.append(r), lambda r, _s: replies.append(r), threading.Event())
    try:
        d.dispatch(Instruction("sample-echo", "first", (json.dumps({"message": "a"}),)))
        deadline = time.monotonic() + 30
        while not replies and time.monotonic() < deadline:
            time.sleep(0.05)
        d.dispatch(Instruction("sample-echo", "second", (json.dumps({"message": "b"}),)))
        while len(replies) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for thread in d.threads():
            thread.join(30)
        runner.close()  # its fork server
        registry.available.cache_clear()
    got = {r.step_id: r for r in replies}
    assert got["first"].exit_code == -1 and "Too many open files" in got["first"].error
    assert json.loads(got["second"].output)["echo"] == "b"


# -- SIGTERM while the service is unreachable ----------------------------------------------------------------
@pytest.mark.parametrize("fault", ["silent", "refused"])
def test_sigterm_while_the_service_is_unreachable_exits_at_once(
        hostile: HostileService, tmp_path: Path, fault: str) -> None:
    if fault == "silent":
        url = hostile.url
        hostile.answer(*[Answer(b"", fault="silent")] * 3)
    else:
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        dead.close()
    with start_agent(url, IE, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
        deadline = time.monotonic() + 30
        while fault == "silent" and hostile.polls < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)  # inside the poll's read, or a retry's back-off
        started = time.monotonic()
        agent.proc.send_signal(signal.SIGTERM)
        code = agent.proc.wait(timeout=40)
        took = time.monotonic() - started
    assert code == 0
    # at once, not after the poll's 30 s read timeout; 10 s leaves a loaded machine (load 20 on 2 cores) time to
    # schedule the agent's exit (it was 3 s)
    assert took < 10, f"took {took:.1f}s to exit"


def test_the_state_lock_is_let_go_when_the_agent_stops(tmp_path: Path) -> None:
    from agent.lifecycle import Lifecycle

    first, second = Lifecycle(Notifier("")), Lifecycle(Notifier(""))
    seen: list[bool] = []

    def starts() -> None:  # off the main thread: no signal handler is installed in the test process
        seen.append(first.start("http://127.0.0.1:1", "t", tmp_path))
        seen.append(second.start("http://127.0.0.1:1", "t", tmp_path))
        first.release()
        seen.append(second.start("http://127.0.0.1:1", "t", tmp_path))
        second.release()

    thread = threading.Thread(target=starts)
    thread.start()
    thread.join(30)
    assert seen == [True, False, True]
