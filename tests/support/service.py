"""Real processes for end-to-end tests: the reference service and agents, over real HTTP.

Both run as subprocesses exactly as a person would run them (console scripts of the venv), optionally inside a
network namespace (``netns=``, through ``ip netns exec``). Every wait is bounded and every process is killed
on exit, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import requests

from rules.states import OFF_HOST_STEPS
from rules.user_checks import SAMPLE_PULL_SECRET

BIN = Path(sys.executable).parent
BASE = "/api/assisted-install"
SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "assisted-service-swagger.yaml"


#: Steps that send packets to the host's networks (ARP sweeps, pings, DNS to the configured nameserver). They
#: are exercised in network namespaces (tests/support/netns.py); agents run in this namespace must not send
#: them onto the machine's real network.
ROOT_NAMESPACE_DISABLED_STEPS = ",".join(OFF_HOST_STEPS)


def _netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


class RefService:
    """A running reference service and a small client of its user API."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], db: Path, log: Path, admin_token: str) -> None:
        self.url = url
        self.proc = proc
        self.db = db
        self.log = log
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {admin_token}"

    # -- raw ------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, *, expected: int | Sequence[int] = 200, **kw: Any) -> Any:
        resp = self.session.request(method, self.url + path, timeout=10, **kw)
        codes = (expected,) if isinstance(expected, int) else tuple(expected)
        assert resp.status_code in codes, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json() if resp.content else None

    def api(self, method: str, path: str, **kw: Any) -> Any:
        return self.call(method, BASE + path, **kw)

    # -- user API -------------------------------------------------------------------------------------
    def create_cluster(self, **params: Any) -> dict[str, Any]:
        body = {"name": "test", "openshift_version": "4.16", "pull_secret": SAMPLE_PULL_SECRET,
                "base_dns_domain": "example.com",
                **params}
        return self.api("POST", "/v2/clusters", json=body, expected=201)  # type: ignore[no-any-return]

    def create_infra_env(self, cluster_id: str | None = None, **params: Any) -> dict[str, Any]:
        body = {"name": "test-infra-env", "pull_secret": SAMPLE_PULL_SECRET, **params}
        if cluster_id:
            body["cluster_id"] = cluster_id
        return self.api("POST", "/v2/infra-envs", json=body, expected=201)  # type: ignore[no-any-return]

    def token(self, infra_env_id: str) -> str:
        return str(self.call("GET", f"/api/reference/infra-envs/{infra_env_id}/token")["token"])

    def cluster(self, cluster_id: str) -> dict[str, Any]:
        return self.api("GET", f"/v2/clusters/{cluster_id}")  # type: ignore[no-any-return]

    def hosts(self, infra_env_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/v2/infra-envs/{infra_env_id}/hosts")  # type: ignore[no-any-return]

    def host(self, infra_env_id: str, host_id: str) -> dict[str, Any]:
        return self.api("GET", f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}")  # type: ignore[no-any-return]

    def patch_host(self, infra_env_id: str, host_id: str, **params: Any) -> dict[str, Any]:
        return self.api("PATCH", f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}", json=params,  # type: ignore
                        expected=201)

    def patch_cluster(self, cluster_id: str, **params: Any) -> dict[str, Any]:
        return self.api("PATCH", f"/v2/clusters/{cluster_id}", json=params, expected=201)  # type: ignore

    def install_cluster(self, cluster_id: str) -> dict[str, Any]:
        return self.api("POST", f"/v2/clusters/{cluster_id}/actions/install", expected=202)  # type: ignore

    def replies(self, host_id: str, step_type: str | None = None) -> list[dict[str, Any]]:
        params = {"step_type": step_type} if step_type else None
        return self.call("GET", f"/api/reference/hosts/{host_id}/replies", params=params)  # type: ignore

    def requests_seen(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/reference/requests")  # type: ignore[no-any-return]

    def inject_fault(self, method: str, path: str, status: int, count: int = 1, delay: float = 0,
                     body: Any = None) -> None:
        self.call("POST", "/api/reference/faults", expected=201,
                  json={"method": method, "path": path, "status": status, "count": count, "delay": delay,
                        "body": body})

    def wait_host(self, infra_env_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30,
                  host_id: str | None = None) -> dict[str, Any]:
        """Wait until a host (or the given one) satisfies ``predicate``; fail with what was last seen."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            last = self.hosts(infra_env_id)
            for h in last:
                if (host_id is None or h["id"] == host_id) and predicate(h):
                    return h
            time.sleep(0.2)
        summary = [(h["id"], h["status"], h.get("status_info")) for h in last]
        raise AssertionError(f"no host matched within {timeout}s; hosts: {summary}\n{self.log.read_text()[-3000:]}")

    def wait_requests(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
                      ) -> list[dict[str, Any]]:
        """The requests the service has seen, once ``predicate`` holds of them (a request awaited, where a sleep
        would guess how long the agent takes to send it); fail with the last ones seen."""
        deadline = time.monotonic() + timeout
        while not predicate(seen := self.requests_seen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the requests seen did not match within {timeout}s; the last ones: "
                                     f"{[(r['method'], r['path'], r['status']) for r in seen[-10:]]}")
            time.sleep(0.2)
        return seen

    def wait_replies(self, host_id: str, step_type: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.replies(host_id, step_type)
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} {step_type} replies from {host_id} within {timeout}s")


def service_command(db: Path, ready: Path, *, host: str, port: int, next_step_seconds: float, auth: str,
                    extra: Sequence[str] = ()) -> list[str]:
    return [str(BIN / "assisted-reference-service"), "--host", host, "--port", str(port), "--db", str(db),
            "--next-step-seconds", str(next_step_seconds), "--auth", auth, "--test-mode",
            "--ready-file", str(ready), "--admin-token", "test-admin-token", *extra]


@contextlib.contextmanager
def start_service(tmp_path: Path, *, netns: str | None = None, host: str = "127.0.0.1", port: int = 0,
                  next_step_seconds: float = 1, auth: str = "none", extra: Sequence[str] = (),
                  db: Path | None = None, timeout: float = 20) -> Iterator[RefService]:
    db = db or tmp_path / "service.db"
    ready = tmp_path / f"service-{time.monotonic_ns()}.url"
    log = tmp_path / "service.log"
    cmd = _netns_prefix(netns) + service_command(db, ready, host=host, port=port,
                                                 next_step_seconds=next_step_seconds, auth=auth, extra=extra)
    env = {**os.environ}
    if SPEC.exists():
        env.setdefault("ASSISTED_SPEC", str(SPEC))
    if netns is None:
        # Agents beside a service in this namespace are on the machine's real network: no probes of it.
        env.setdefault("DISABLED_STEPS", ROOT_NAMESPACE_DISABLED_STEPS)
    with open(log, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(f"reference service exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"reference service not ready within {timeout}s:\n{log.read_text()}")
            time.sleep(0.05)
        yield RefService(ready.read_text().strip(), proc, db, log, "test-admin-token")
    finally:
        stop_process(proc)


class AgentProcess:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log_path = log

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_log(self, text: str, timeout: float = 30, *, count: int = 1) -> None:
        """Until ``text`` is in the agent's log ``count`` times (a later run of the same step, not the first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.count(text) >= count:
                return
            if not self.alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the agent log within {timeout}s:\n{self.log[-3000:]}")


def agent_command(service_url: str, infra_env_id: str, args: Sequence[str] = ()) -> list[str]:
    return [str(BIN / "agent"), "--url", service_url, "--infra-env-id", infra_env_id,
            "--agent-version", "quay.io/edge-infrastructure/assisted-installer-agent:latest",
            "--insecure=false", "--interval", "1", *args]


@contextlib.contextmanager
def start_agent(service_url: str, infra_env_id: str, *, netns: str | None = None, args: Sequence[str] = (),
                env: dict[str, str] | None = None, log: Path | None = None,
                state_dir: Path | None = None, prefix: Sequence[str] = ()) -> Iterator[AgentProcess]:
    """Start the real ``agent`` console script (after ``prefix``, a command that execs the rest); it is killed
    (with its steps) when the block ends."""
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"agent-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "AGENT_CONFIG": "/nonexistent", **(env or {})}
    if state_dir is not None:
        full_env["AGENT_STATE_DIR"] = str(state_dir)
    full_env.setdefault("AGENT_STATE_DIR", str(log.parent / f"{log.stem}-state"))
    cmd = [*prefix, *_netns_prefix(netns), *agent_command(service_url, infra_env_id, args)]
    with open(log, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    try:
        yield AgentProcess(proc, log)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5) -> None:
    """SIGTERM the process group, then SIGKILL it, and reap: nothing is left behind."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def decode_output(reply: dict[str, Any]) -> Any:
    return json.loads(reply["output"]) if reply.get("output") else None
