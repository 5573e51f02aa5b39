"""The main job on one machine: a reference service, an agent on this host against it, and what it learned.

    python -m reference_service.demo [--port 8090] [--seconds 90] [--keep-running] [--auth token] [--sno]

It starts the real ``agent`` as agent.service would (with the infra-env's token when ``--auth token``) against
a cluster this machine can be a ready host of, waits until the host is ``known`` (or the time is up), then
prints the host, its validations, every step reply and why each validation that still fails does. A 2-core
machine cannot be a single-node cluster's master (8 cores), nor pass the DNS and NTP checks of a new cluster
without sending packets beyond this machine, so by default the host joins an existing cluster as a worker
(``v2ImportCluster``, the real service's day-2 flow): a worker needs 2 cores and 8 GiB, and the one check of
the network it needs, downloading its Ignition from the cluster's API (api-vip-connectivity-check), is
answered on this machine by a stand-in served on a loopback address. ``--sno`` makes a single-node cluster
instead. Nothing on this machine is changed: destructive steps are never issued before a user starts an
installation, which the demo does not do.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from rules.states import OFF_HOST_STEPS
from rules.user_checks import SAMPLE_PULL_SECRET

BASE = "/api/assisted-install"
BIN = Path(sys.executable).parent
AGENT_IMAGE = "quay.io/edge-infrastructure/assisted-installer-agent:latest"


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _print_host(host: dict[str, Any], replies: list[dict[str, Any]]) -> None:
    inv = json.loads(host.get("inventory") or "{}")
    print(f"\nhost {host['id']}  ({inv.get('hostname', '?')})")
    print(f"  status       {host['status']}: {host['status_info']}")
    cpu, mem = inv.get("cpu", {}), inv.get("memory", {})
    if cpu:
        print(f"  cpu          {cpu.get('count')} x {cpu.get('model_name', '?')} ({cpu.get('architecture')})")
    if mem:
        print(f"  memory       {mem.get('physical_bytes', 0) / 2**30:.1f} GiB physical "
              f"({mem.get('physical_bytes_method', '?')}), {mem.get('usable_bytes', 0) / 2**30:.1f} GiB usable")
    for disk in inv.get("disks") or []:
        elig = disk.get("installation_eligibility") or {}
        why = "eligible" if elig.get("eligible") else "; ".join(elig.get("not_eligible_reasons") or [])
        print(f"  disk         {disk.get('path')} {disk.get('size_bytes', 0) / 1e9:.0f} GB "
              f"{disk.get('drive_type', '')}: {why}")
    for nic in inv.get("interfaces") or []:
        addrs = ", ".join((nic.get("ipv4_addresses") or []) + (nic.get("ipv6_addresses") or []))
        print(f"  nic          {nic.get('name')} {nic.get('mac_address', '')} {addrs}")
    print("  validations")
    for category, results in json.loads(host.get("validations_info") or "{}").items():
        for r in results:
            print(f"    {category:9} {r['status']:8} {r['id']}: {r['message']}")
    print("  step replies")
    for r in replies:
        size = len(r.get("output") or "")
        what = f"output {size} bytes" if not r["exit_code"] else f"error: {r.get('error', '')[:100]}"
        print(f"    {time.strftime('%H:%M:%S', time.localtime(r['received_at']))} {r['step_type']:26} "
              f"exit {r['exit_code']:<4} {what}")


#: What the stand-in of the existing cluster's machine config server serves (a valid, empty Ignition).
WORKER_IGNITION = b'{"ignition": {"version": "3.2.0"}}'
#: The machine config server's port, which the service puts in the api-vip-connectivity-check's URL.
MCS_PORT = 22624


class _Ignition(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.startswith("/config/")
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if ok:
            self.wfile.write(WORKER_IGNITION)

    def log_message(self, *args: Any) -> None:
        pass


def ignition_server() -> http.server.ThreadingHTTPServer:
    """The stand-in on the first loopback address whose port 22624 is free (another demo may hold one)."""
    for last in range(2, 255):
        try:
            server = http.server.ThreadingHTTPServer((f"127.0.0.{last}", MCS_PORT), _Ignition)
        except OSError:
            continue
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    raise SystemExit(f"demo: no loopback address has port {MCS_PORT} free for the cluster's Ignition")


def why_failing(host: dict[str, Any]) -> list[str]:
    """One line per validation that does not pass, with the service's reason."""
    return [f"  {r['id']} ({r['status']}): {r['message']}"
            for rs in json.loads(host.get("validations_info") or "{}").values() for r in rs
            if r["status"] not in ("success", "disabled")]


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--seconds", type=float, default=90, help="give up waiting after this long")
    p.add_argument("--auth", choices=["none", "token"], default="token")
    p.add_argument("--keep-running", action="store_true", help="leave the service and agent running")
    p.add_argument("--sno", action="store_true",
                   help="make a single-node cluster (its master needs 8 cores and the DNS and NTP checks)")
    p.add_argument("--network-checks", action="store_true",
                   help="also issue the steps that send packets onto this machine's networks (ARP sweep of its "
                        "subnets, DNS and NTP lookups); off by default")
    ns = p.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stop like Ctrl-C does: through the finally below
        signal.signal(sig, _exit_on_signal)

    work = Path(tempfile.mkdtemp(prefix="assisted-demo-"))
    admin = "demo-admin-token"
    ready = work / "service.url"
    service = _start([str(BIN / "assisted-reference-service"), "--port", str(ns.port), "--db", str(work / "db"),
                      "--next-step-seconds", "3", "--auth", ns.auth, "--admin-token", admin,
                      "--ready-file", str(ready)], work / "service.log",
                     {} if ns.network_checks else {"DISABLED_STEPS": ",".join(
                         s for s in OFF_HOST_STEPS if ns.sno or s != "api-vip-connectivity-check")})
    agent: subprocess.Popen[bytes] | None = None
    mcs = None if ns.sno else ignition_server()  # its URL is on this machine: no packet leaves it
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            if service.poll() is not None or time.monotonic() > deadline:
                print((work / "service.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.05)
        url = ready.read_text()
        print(f"reference service: {url}  (log {work / 'service.log'})")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {admin}"
        if mcs is None:
            cluster = api.post(url + BASE + "/v2/clusters", json={
                "name": "demo", "openshift_version": "4.16", "pull_secret": SAMPLE_PULL_SECRET,
                "base_dns_domain": "example.com", "control_plane_count": 1}, timeout=10).json()
        else:  # the existing cluster this host joins as a worker; its API is the stand-in's address
            cluster = api.post(url + BASE + "/v2/clusters/import", json={
                "name": "demo", "openshift_version": "4.16", "api_vip_dnsname": mcs.server_address[0],
                "openshift_cluster_id": str(uuid.uuid4())}, timeout=10).json()
        ie = api.post(url + BASE + "/v2/infra-envs", json={"name": "demo", "pull_secret": SAMPLE_PULL_SECRET,
                                                            "cluster_id": cluster["id"]}, timeout=10).json()
        token = api.get(f"{url}/api/reference/infra-envs/{ie['id']}/token", timeout=10).json()["token"]
        print(f"cluster {cluster['id']}, infra-env {ie['id']}")
        cmd = [str(BIN / "agent"), "--url", url, "--infra-env-id", ie["id"], "--agent-version", AGENT_IMAGE,
               "--insecure=false", "--interval", "2"]
        print("agent:", " ".join(cmd), f"(log {work / 'agent.log'})")
        agent = _start(cmd, work / "agent.log", {"PULL_SECRET_TOKEN": token, "AGENT_STATE_DIR": str(work)})
        deadline = time.monotonic() + ns.seconds
        host: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            hosts = api.get(f"{url}{BASE}/v2/infra-envs/{ie['id']}/hosts", timeout=10).json()
            host = hosts[0] if hosts else None
            if host and mcs is not None and host.get("role") != "worker":
                api.patch(f"{url}{BASE}/v2/infra-envs/{ie['id']}/hosts/{host['id']}", json={"host_role": "worker"},
                          timeout=10)
            if host and host["status"] == "known":
                break
            if agent.poll() is not None:
                break
            time.sleep(0.5)
        if host is None:
            print("the host did not register; agent log:\n" + (work / "agent.log").read_text(), file=sys.stderr)
            return 1
        host = api.get(f"{url}{BASE}/v2/infra-envs/{ie['id']}/hosts/{host['id']}", timeout=10).json()
        replies = api.get(f"{url}/api/reference/hosts/{host['id']}/replies", timeout=10).json()
        _print_host(host, replies)
        failing = why_failing(host)
        role = host.get("role")
        print(f"\nthe host is {host['status']} as a {role} of "
              + ("a single-node cluster" if mcs is None else "an existing cluster it joins (day 2)"))
        print("why the remaining validations do not pass:\n" + "\n".join(failing) if failing else
              "every validation passes")
        if ns.keep_running:
            print(f"\nservice and agent keep running; open {url}/infra-envs/{ie['id']}/hosts/{host['id']} (this "
                  f"host), {url}/ (clusters) or {url}/docs (API docs)"
                  + (f"; sign in with the admin token {admin}" if ns.auth == "token" else "") + ". Ctrl-C stops both.")
            try:
                while service.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if host["status"] == "known" else 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # a second signal must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        if agent is not None:
            _stop(agent)
        _stop(service)
        if mcs is not None:
            mcs.shutdown()


if __name__ == "__main__":
    sys.exit(main())
