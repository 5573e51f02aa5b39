"""The fault suite's hostile scenarios (issue 26), run by bench/faults.py with its table:

- a service URL answering 307 to another origin: the token must not follow (counted as leaks);
- a second agent on the first one's state directory while its step runs: it must exit, the step must finish;
- while a real agent works with a real service: 1,100 connections that never finish their head (slowloris),
  four 64 MiB headers, eight bodies trickled a byte a second, and a cross-site POST; the agent's steps must
  be answered, ``/healthz`` must answer within ``LATENCY_BOUND`` all along, the service must not grow by more
  than ``RSS_BOUND_MIB``, and the forged request must change nothing;
- polls answered 404 (a host deleted in the UI, a wrong path behind a proxy): the agent must back off, not
  register and poll again at once (requests a second counted against ``POLLS_PER_SECOND_BOUND``);
- one token registering 10,000 hosts from four clients while another infra-env's agent works: it must be
  stopped at the infra-env's limit (the default, 5,000; the rest 429), the other agent's steps answered, and
  ``/healthz`` and the hosts page must answer within ``LATENCY_BOUND`` all along.

The frozen filesystem and the power cut are in bench/faults_storage.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import requests
from faults import ENV, Tally, check_crashes, echo, host_id, integrity, queue, setup, wait

from reference_service.settings import Settings
from tests.support.hostile import Answer, HostileService
from tests.support.service import BASE, start_agent, start_service

TOKEN = "faults-hostile-token"
#: What another client may wait for while the service is attacked (seconds), and how much it may grow (MiB).
LATENCY_BOUND = 2.0
RSS_BOUND_MIB = 50
#: Polls a second one agent may make (the Go agent's back-off keeps it near one per next_instruction_seconds).
POLLS_PER_SECOND_BOUND = 5.0


def _redirector(target: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _go(self) -> None:
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _go

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def redirect(t: Tally, work: Path) -> None:
    hostile = HostileService()
    front = _redirector(hostile.url)
    try:
        url = f"http://127.0.0.1:{front.server_address[1]}"
        with start_agent(url, host_id(900), args=["--host-id", host_id(901)], env={**ENV, "PULL_SECRET_TOKEN": TOKEN},
                         log=work / "redirect.log") as agent:
            t.faults += 1
            started = time.monotonic()
            wait(lambda: hostile.polls >= 3, 30)
            time.sleep(5)
            rate = hostile.polls / (time.monotonic() - started)
            check_crashes(t, [agent], "redirect")
        t.leaks += sum(TOKEN in json.dumps(h) for _m, _p, h in hostile.seen)
        if rate > POLLS_PER_SECOND_BOUND:
            t.storms += 1
            t.notes.append(f"redirect: {rate:.1f} polls/s")
    finally:
        front.shutdown()
        hostile.close()


def two_agents(t: Tally, work: Path) -> None:
    state = work / "shared-state"
    with start_service(work, db=work / "two.db") as svc:
        ie = setup(svc)
        with start_agent(svc.url, ie, args=["--host-id", host_id(910)], env=ENV, state_dir=state,
                         log=work / "first.log") as first:
            wait(lambda: bool(svc.hosts(ie)), 30)
            step = queue(svc, ie, host_id(910), [echo("survives", 8)])
            wait(lambda: bool(psutil.Process(first.proc.pid).children(recursive=True)), 20)
            t.faults += 1
            second = subprocess.run([str(Path(sys.executable).parent / "agent"), "--url", svc.url, "--infra-env-id", ie,
                                     "--host-id", host_id(910)], env={**ENV, "AGENT_STATE_DIR": str(state),
                                                                      "AGENT_CONFIG": "/nonexistent"},
                                    capture_output=True, text=True, timeout=60)
            if second.returncode != 1:
                t.notes.append(f"two agents: the second exited {second.returncode}")
                t.crashes += 1
            replies: list[dict[str, Any]] = []

            def replied() -> bool:
                replies[:] = [r for r in svc.replies(host_id(910)) if r["step_id"] == step]
                return bool(replies)

            wait(replied, 40)
            if not replies or replies[0].get("exit_code"):
                t.lost += 1
                t.notes.append(f"two agents: the first one's step got {replies[:1]}")
            check_crashes(t, [first], "two agents")
        t.integrity.append(integrity(svc.db))


def _attack(addr: tuple[str, int], path: str, stop: threading.Event) -> None:
    slow = []
    for _ in range(1100):
        s = socket.create_connection(addr)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        slow.append(s)
    trickle = []
    for _ in range(8):
        s = socket.create_connection(addr)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        trickle.append(s)
    floods = []
    for _ in range(4):
        s = socket.create_connection(addr)
        s.sendall(b"GET / HTTP/1.1\r\nX-Flood: ")
        floods.append(s)
    while not stop.wait(1.0):
        for s in trickle:
            try:
                s.sendall(b"1\r\n \r\n")
            except OSError:
                pass
        for s in floods:
            try:
                s.sendall(b"a" * (16 << 20))
            except OSError:
                pass
    for s in slow + trickle + floods:
        s.close()


def under_attack(t: Tally, work: Path) -> None:
    with start_service(work, db=work / "attack.db") as svc:
        ie = setup(svc)
        host, port = svc.url.split("//", 1)[1].rsplit(":", 1)
        proc = psutil.Process(svc.proc.pid)
        with start_agent(svc.url, ie, args=["--host-id", host_id(920)], env=ENV, log=work / "attacked.log") as agent:
            wait(lambda: bool(svc.hosts(ie)), 30)
            rss_before = proc.memory_info().rss
            stop = threading.Event()
            path = f"{BASE}/v2/infra-envs/{ie}/hosts/{host_id(920)}/instructions"
            attacker = threading.Thread(target=_attack, args=((host, int(port)), path, stop), daemon=True)
            attacker.start()
            t.faults += 4
            steps = [queue(svc, ie, host_id(920), [echo(f"attacked {i}", 1)]) for i in range(3)]
            worst = 0.0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    requests.get(svc.url + "/healthz", timeout=10)
                except requests.RequestException:
                    worst = max(worst, 10.0)
                worst = max(worst, time.monotonic() - started)
                time.sleep(0.5)
            forged = requests.post(svc.url + BASE + "/v2/clusters", data=json.dumps({"name": "forged"}),
                                   headers={"Origin": "http://127.0.0.1:1", "Content-Type": "text/plain"}, timeout=10)
            t.faults += 1
            if forged.status_code < 400:
                t.leaks += 1
                t.notes.append(f"attack: a cross-site POST was answered {forged.status_code}")
            grown = (proc.memory_info().rss - rss_before) >> 20
            stop.set()
            attacker.join(30)
            answered = {r["step_id"] for r in svc.replies(host_id(920))}
            t.lost += sum(s not in answered for s in steps)
            check_crashes(t, [agent], "attack")
        t.latency = max(t.latency, worst)
        if grown > RSS_BOUND_MIB:
            t.notes.append(f"attack: the service grew by {grown} MiB")
            t.leaks += 1
        t.integrity.append(integrity(svc.db))


def poll_404s(t: Tally, work: Path) -> None:
    hostile = HostileService()
    hostile.answer(*[Answer(b'{"code": "404", "href": "", "id": 404, "kind": "Error", "reason": "host not found"}',
                            404)] * 10_000)
    try:
        with start_agent(hostile.url, host_id(940), args=["--host-id", host_id(940)], env=ENV,
                         log=work / "404.log") as agent:
            t.faults += 1
            wait(lambda: hostile.polls >= 1, 30)
            started, seen = time.monotonic(), len(hostile.seen)
            time.sleep(20)
            rate = (len(hostile.seen) - seen) / (time.monotonic() - started)
            check_crashes(t, [agent], "404 storm")
        t.notes.append(f"404 storm: {rate:.2f} requests/s from the agent (register and poll)")
        if rate > POLLS_PER_SECOND_BOUND:
            t.storms += 1
    finally:
        hostile.close()


def _register(url: str, numbers: range, codes: dict[int, int], lock: threading.Lock) -> None:
    with requests.Session() as session:
        for n in numbers:
            try:
                code = session.post(url, json={"host_id": host_id(100_000 + n)}, timeout=30).status_code
            except requests.RequestException:
                code = -1
            with lock:
                codes[code] = codes.get(code, 0) + 1


def ten_thousand_hosts(t: Tally, work: Path) -> None:
    """One token registers 10,000 hosts, four clients at once, while another infra-env's agent works."""
    with start_service(work, db=work / "many.db") as svc:
        flooded, other = setup(svc), setup(svc)
        limit = Settings().max_hosts_per_infra_env  # the default the service runs with
        with start_agent(svc.url, other, args=["--host-id", host_id(950)], env=ENV, log=work / "other.log") as agent:
            wait(lambda: bool(svc.hosts(other)), 30)
            codes: dict[int, int] = {}
            lock = threading.Lock()
            url = f"{svc.url}{BASE}/v2/infra-envs/{flooded}/hosts"
            clients = [threading.Thread(target=_register, args=(url, range(i, 10_000, 4), codes, lock), daemon=True)
                       for i in range(4)]
            t.faults += 1
            for client in clients:
                client.start()
            steps: list[str] = []
            worst = 0.0
            while any(c.is_alive() for c in clients):
                if len(steps) < 10:
                    steps.append(queue(svc, other, host_id(950), [echo(f"beside 10,000 {len(steps)}", 0)]))
                for path in ("/healthz", "/"):
                    started = time.monotonic()
                    try:
                        requests.get(svc.url + path, timeout=30)
                    except requests.RequestException:
                        worst = max(worst, 30.0)
                    worst = max(worst, time.monotonic() - started)
                time.sleep(0.5)
            for client in clients:
                client.join(60)
            wait(lambda: all(s in {r["step_id"] for r in svc.replies(host_id(950))} for s in steps), 60)
            answered = {r["step_id"] for r in svc.replies(host_id(950))}
            t.lost += sum(s not in answered for s in steps)
            check_crashes(t, [agent], "10,000 hosts")
        t.latency = max(t.latency, worst)
        t.notes.append(f"10,000 hosts on one token: {codes}; /healthz and / worst {worst:.2f} s")
        if codes.get(201) != limit or codes.get(429) != 10_000 - limit:
            t.storms += 1
        t.integrity.append(integrity(svc.db))


def scenarios(t: Tally, work: Path) -> list[tuple[str, Any]]:
    return [("token and a redirect to another origin", lambda: redirect(t, work)),
            ("two agents, one state directory", lambda: two_agents(t, work)),
            ("slowloris, header flood, trickled bodies, forged POST", lambda: under_attack(t, work)),
            ("polls answered 404", lambda: poll_404s(t, work)),
            ("10,000 hosts on one token", lambda: ten_thousand_hosts(t, work))]
