"""Where the agent's words go (journal, stderr, JSON lines) and how its requests travel (proxies)."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common.logs import JOURNAL_SOCKET
from tests.support.service import RefService, start_agent


def _setup(svc: RefService) -> str:
    return str(svc.create_infra_env(cluster_id=svc.create_cluster(control_plane_count=1)["id"])["id"])


def test_json_lines_logging(service: RefService, tmp_path: Path) -> None:
    ie = _setup(service)
    with start_agent(service.url, ie, args=["--log-json"], log=tmp_path / "agent.log") as agent:
        agent.wait_log("registered host", timeout=20)
    lines = [json.loads(line) for line in agent.log.splitlines() if line.strip()]
    registered = [e for e in lines if "registered host" in e["msg"]]
    assert registered and registered[0]["level"] == "info" and registered[0]["logger"] == "agent"
    assert all({"time", "level", "logger", "msg"} <= set(e) for e in lines)


@pytest.fixture
def journal_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A stand-in journald: a datagram socket bound in a folder of the test's, which the agent sees at
    journald's path in a mount namespace of its own (``journal_prefix``), whether or not a journald (or a
    socket some other test left) is at that path on this machine."""
    folder = tmp_path / "journal"
    folder.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / os.path.basename(JOURNAL_SOCKET)))
    sock.settimeout(10)
    os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
    try:
        yield sock
    finally:
        sock.close()


def journal_prefix(tmp_path: Path) -> list[str]:
    """Runs the rest of the command with ``tmp_path/journal`` mounted over journald's folder, privately."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" "$1" && shift && exec "$@"', str(tmp_path / "journal"),
            os.path.dirname(JOURNAL_SOCKET)]


def test_logs_go_to_the_journal_when_it_runs(service: RefService, tmp_path: Path,
                                             journal_socket: socket.socket) -> None:
    ie = _setup(service)
    received: list[bytes] = []
    with start_agent(service.url, ie, log=tmp_path / "agent.log", prefix=journal_prefix(tmp_path)):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(b"registered host" in m for m in received):
            received.append(journal_socket.recv(65536))
    entry = next(m for m in received if b"registered host" in m)
    assert b"SYSLOG_IDENTIFIER=agent" in entry and b"PRIORITY=6" in entry


class _Proxy(http.server.ThreadingHTTPServer):
    seen: list[str]


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    """A forward proxy for plain HTTP: absolute-form request lines, relayed to the origin."""

    def _relay(self) -> None:
        assert isinstance(self.server, _Proxy)
        self.server.seen.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        conn.request(self.command, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _relay

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("where", ["environment", "agent.conf"])
def test_proxy_variables_are_honoured(service: RefService, tmp_path: Path, where: str) -> None:
    """From the environment, or from agent.conf for a hand-run agent (as systemd's EnvironmentFile= would)."""
    ie = _setup(service)
    proxy = _Proxy(("127.0.0.1", 0), _ProxyHandler)
    proxy.seen = []
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"HTTP_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}", "NO_PROXY": "", "no_proxy": ""}
        if where == "agent.conf":
            conf = tmp_path / "agent.conf"
            conf.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            assert not {"HTTP_PROXY", "http_proxy"} & set(os.environ), "this test needs an environment without proxy"
            env = {"AGENT_CONFIG": str(conf)}
        with start_agent(service.url, ie, env=env, log=tmp_path / "agent.log"):
            service.wait_host(ie, lambda h: True, timeout=20)
    finally:
        proxy.shutdown()
    assert any(s.startswith(f"POST {service.url}/api/assisted-install/v2/infra-envs/{ie}/hosts") for s in proxy.seen)


def test_with_the_service_down_the_agents_own_line_comes_without_urllib3s_retry_warnings(tmp_path: Path) -> None:
    """A person starting the agent against a service that is down reads one line that says what failed and
    what happens next, not three raw "Retrying (Retry(total=2, ...))" warnings of the HTTP library first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket is closed
    with start_agent(f"http://127.0.0.1:{port}", "11111111-1111-1111-1111-111111111111",
                     log=tmp_path / "agent.log") as agent:
        agent.wait_log("Error registering host", timeout=60)
    log = agent.log
    assert "connection refused" in log.lower() and "retrying in" in log
    assert "Retrying (Retry(" not in log and "urllib3" not in log
