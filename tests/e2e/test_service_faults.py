"""The reference service under hostile requests (issue 11): declared auth on every route, bounded bodies, 400 for
malformed input, canonical host ids, and secrets at rest."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from starlette.routing import Route

from reference_service.http import agent_routes, console, console_forms, docs, reference_routes, user_routes
from reference_service.http.app import create_app
from reference_service.http.auth import Auth
from reference_service.http.routing import DEFAULT_MAX_BODY
from reference_service.orchestrator import BASE
from rules.install import OS_IMAGE_PATH
from tests.support.service import RefService, start_service

#: Every route object, with the ``auth`` each declares (an attribute starlette's types do not know).
ROUTES: list[Any] = [*agent_routes.ROUTES, *user_routes.ROUTES, *reference_routes.ROUTES, *console.ROUTES,
                     *console_forms.ROUTES,
                     *docs.ROUTES]
HOST = "11111111-2222-3333-4444-555555555555"


def _setup(svc: RefService) -> tuple[str, str]:
    cluster = svc.create_cluster(control_plane_count=1, pull_secret='{"auths": {"x": {"auth": "dXNlcjpzZWNyZXQ="}}}')
    ie = svc.create_infra_env(cluster_id=cluster["id"], pull_secret='{"auths": {"x": {"auth": "dXNlcjpzZWNyZXQ="}}}')
    return str(cluster["id"]), str(ie["id"])


def test_an_undeclared_route_is_refused_at_start() -> None:
    async def handler(request: object) -> None:
        return None

    agent_routes.ROUTES.append(Route("/sneaky", handler))
    try:
        with pytest.raises(RuntimeError, match="without a declared auth"):
            create_app(None)  # type: ignore[arg-type]
    finally:
        agent_routes.ROUTES.pop()


def test_every_route_but_the_public_ones_refuses_anonymous_callers(tmp_path: Path) -> None:
    public = {r.path for r in ROUTES if r.auth is Auth.PUBLIC}
    # signing in and out, and the pages' stylesheet, scripts and Swagger UI
    assert public == {"/healthz", "/health", "/ready", OS_IMAGE_PATH, "/login", "/logout", "/static"}
    with start_service(tmp_path, auth="token") as svc:
        cluster, ie = _setup(svc)
        token = svc.token(ie)
        svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, headers={"X-Secret-Key": token},
                expected=201)
        ids = {"cluster_id": cluster, "infra_env_id": ie, "host_id": HOST}
        refused = []
        for r in ROUTES:
            if r.auth is Auth.PUBLIC:
                continue
            path = r.path.format(**ids)
            for method in sorted(r.methods - {"HEAD"}):
                for headers in ({}, {"X-Secret-Key": "not-the-token"}, {"Authorization": "Bearer nope"}):
                    resp = requests.request(method, svc.url + path, headers=headers, timeout=10,
                                            params={"logs_type": "controller"}, allow_redirects=False)
                    code = resp.status_code
                    if code == 303 and method == "GET" and not path.startswith("/api/"):
                        # a page: a browser is sent to sign in, and gets nothing of the page
                        assert resp.headers["location"] == f"/login?next={path}" and not resp.content
                        code = 401
                    refused.append((method, path, code))
        assert {code for *_, code in refused} == {401}, [x for x in refused if x[2] != 401]
        assert any(p == "/" for _, p, _ in refused)
        assert any(p.startswith("/api/reference/requests") for _, p, _ in refused)


def test_controller_logs_need_a_token_of_the_cluster(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        cluster, ie = _setup(svc)
        files = {"upfile": ("logs.tar.gz", b"\x1f\x8b" + b"0" * 100)}
        url = f"{svc.url}{BASE}/v2/clusters/{cluster}/logs"
        bad = requests.post(url, params={"logs_type": "controller"}, files=files,
                            headers={"X-Secret-Key": "anything"}, timeout=10)
        good = requests.post(url, params={"logs_type": "controller"}, files=files,
                             headers={"X-Secret-Key": svc.token(ie)}, timeout=10)
    assert bad.status_code == 401 and good.status_code == 204


def _raw_post(url: str, path: str, body_size: int, chunked: bool) -> tuple[int, float, int]:
    """POST ``body_size`` bytes; returns (status, seconds, bytes the server let us send)."""
    host, port = url.split("//")[1].split(":")
    sent = 0
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {body_size}\r\n\r\n"
        sock.sendall(head.encode())
        chunk = b"[" + b"1," * (512 * 1024)
        try:
            while sent < body_size:
                data = chunk[: body_size - sent]
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
                sent += len(data)
        except OSError:
            pass
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    return int(answer.split()[1]), time.monotonic() - started, sent


@pytest.mark.parametrize("chunked", [False, True])
def test_a_huge_body_is_refused_with_413_while_it_streams(tmp_path: Path, chunked: bool) -> None:
    with start_service(tmp_path) as svc:
        _, ie = _setup(svc)
        path = f"{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions"
        proc = psutil.Process(svc.proc.pid)
        peak = [proc.memory_info().rss]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak.append(proc.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            status, _, _ = _raw_post(svc.url, path, 200 << 20, chunked)
        finally:
            done.set()
            sampler.join()
        assert status == 413
        assert max(peak) - peak[0] < 64 << 20, "the service held the body it refuses"
        resp = requests.post(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts", data=b"x" * (DEFAULT_MAX_BODY + 1),
                             timeout=20)
        assert resp.status_code == 413 and resp.json()["code"] == "413" and "limit" in resp.json()["reason"]
        assert svc.proc.poll() is None


def test_other_requests_are_served_while_a_large_reply_is_parsed(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        _, ie = _setup(svc)
        svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, expected=201)
        big = json.dumps({"step_id": "x", "step_type": "free-network-addresses", "exit_code": 1,
                          "error": "e", "output": "", "pad": [[i, str(i)] for i in range(600_000)]})
        done = threading.Event()
        served_during: list[float] = []

        def probe() -> None:
            while not done.is_set():
                t = time.monotonic()
                requests.get(svc.url + "/healthz", timeout=30)
                if not done.is_set():
                    served_during.append(time.monotonic() - t)

        thread = threading.Thread(target=probe)
        thread.start()
        try:
            requests.post(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions", data=big, timeout=60)
        finally:
            done.set()
            thread.join(30)
    assert served_during, "no request was served while the large body was handled"


#: A concurrent small request may take this long while a large reply is checked: a few ms on an idle machine, a
#: couple of seconds with the 2 shared cores saturated (storing the 25 MB reply stays on the loop); checking
#: the reply on the loop instead stalls it for the whole 15-30 s of the output's model check.
CONCURRENT_BOUND = 5.0


@pytest.mark.slow
def test_a_large_step_reply_is_checked_off_the_event_loop(tmp_path: Path) -> None:
    """A 25 MB free-network-addresses reply (within the route's limit under --inventory-max-size 20 MB): its
    output is parsed and checked against the spec's model, and meanwhile GETs of the host keep answering."""
    networks = [{"network": f"10.{i // 256 % 256}.{i % 256}.0/24",
                 "free_addresses": [f"10.{i // 256 % 256}.{i % 256}.{j}" for j in range(1, 120)]}
                for i in range(12_000)]
    body = json.dumps({"step_id": "free-network-addresses-big", "step_type": "free-network-addresses",
                       "exit_code": 0, "output": json.dumps(networks)}).encode()
    assert 20 << 20 < len(body) < 40 << 20
    with start_service(tmp_path, extra=["--inventory-max-size", str(20_000_000)]) as svc:
        _, ie = _setup(svc)
        svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, expected=201)
        done = threading.Event()
        latencies: list[float] = []

        def probe() -> None:
            while not done.is_set():
                started = time.monotonic()
                assert requests.get(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}", timeout=120).ok
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)

        thread = threading.Thread(target=probe)
        thread.start()
        try:
            resp = requests.post(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions", data=body,
                                 timeout=240)
        finally:
            done.set()
            thread.join(130)
        assert resp.status_code == 204, resp.text[:300]
        (stored,) = svc.replies(HOST, "free-network-addresses")
        assert json.loads(stored["output"])[-1]["network"] == networks[-1]["network"]
    assert len(latencies) >= 3, latencies
    assert max(latencies) < CONCURRENT_BOUND, sorted(latencies)[-5:]


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"step_id": "x", "step_type": "inventory", "exit_code": 9223372036854775808}',
    b'{"step_id": "x", "step_type": "inventory", "error": "\\ud800"}',
    b'{"step_id": "x", "step_type": "inventory", "output": "' + b"[" * 50_000 + b'"}',
    b"\xff\xfe not even utf-8",
])
def test_malformed_input_is_a_400_not_a_500(service: RefService, body: bytes) -> None:
    _, ie = _setup(service)
    service.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, expected=201)
    resp = requests.post(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions", data=body,
                         timeout=20)
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["kind"] == "Error"


def test_host_ids_in_any_uuid_spelling_name_one_host(service: RefService) -> None:
    _, ie = _setup(service)
    for spelling in (HOST, f"urn:uuid:{HOST}", "{" + HOST.upper() + "}", HOST.replace("-", "")):
        service.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": spelling}, expected=201)
    assert [h["id"] for h in service.hosts(ie)] == [HOST]
    assert service.api("GET", f"/v2/infra-envs/{ie}/hosts/urn:uuid:{HOST}")["id"] == HOST


def test_secrets_at_rest(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        _, ie = _setup(svc)
        token = svc.token(ie)
        svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": str(uuid.uuid4())},
                headers={"X-Secret-Key": token}, expected=201)
        entries = svc.requests_seen()
        journal = json.dumps(entries)
    assert stat.S_IMODE(svc.db.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(str(svc.db) + ".key").stat().st_mode) == 0o600
    stored = b"".join(p.read_bytes() for p in svc.db.parent.glob(svc.db.name + "*") if p.suffix != ".key")
    assert token.encode() not in stored
    assert token not in journal and "test-admin-token" not in journal and "dXNlcjpzZWNyZXQ=" not in journal
    assert {e["headers"].get("x-secret-key") for e in entries if e["path"].endswith("/hosts")} == {"***"}
    assert {e["headers"].get("authorization") for e in entries if e["path"].endswith("/clusters")} == {"***"}
    secrets = [json.loads(e["body"])["pull_secret"] for e in entries if "pull_secret" in e["body"]]
    assert secrets and set(secrets) == {"***"}
