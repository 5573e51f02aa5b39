"""The main job on one machine: a reference service, an agent on this host against it, and what it learned.

    python -m reference_service.demo [--port 8090] [--seconds 60] [--keep-running] [--auth token]

It creates a single-node cluster and an infra-env, starts the real ``agent`` as agent.service would (with the
infra-env's token when ``--auth token``), waits until the host has been discovered and validated, then prints
the host, its validations and every step reply. Nothing on this machine is changed: destructive steps are
never issued before a user starts an installation, which the demo does not do.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
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


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--seconds", type=float, default=90, help="give up waiting after this long")
    p.add_argument("--auth", choices=["none", "token"], default="token")
    p.add_argument("--keep-running", action="store_true", help="leave the service and agent running")
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
                     {} if ns.network_checks else {"DISABLED_STEPS": ",".join(OFF_HOST_STEPS)})
    agent: subprocess.Popen[bytes] | None = None
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
        cluster = api.post(url + BASE + "/v2/clusters", json={
            "name": "demo", "openshift_version": "4.16", "pull_secret": SAMPLE_PULL_SECRET,
            "base_dns_domain": "example.com",
            "control_plane_count": 1}, timeout=10).json()
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
            if host and host.get("inventory") and host["status"] in ("known", "insufficient", "pending-for-input"):
                time.sleep(4)  # one more round of checks after the state settled
                host = api.get(f"{url}{BASE}/v2/infra-envs/{ie['id']}/hosts/{host['id']}", timeout=10).json()
                break
            if agent.poll() is not None:
                break
            time.sleep(0.5)
        if host is None:
            print("the host did not register; agent log:\n" + (work / "agent.log").read_text(), file=sys.stderr)
            return 1
        replies = api.get(f"{url}/api/reference/hosts/{host['id']}/replies", timeout=10).json()
        _print_host(host, replies)
        if ns.keep_running:
            print(f"\nservice and agent keep running; open {url}/infra-envs/{ie['id']}/hosts/{host['id']} (this "
                  f"host), {url}/ (clusters) or {url}/docs (API docs)"
                  + (f"; sign in with the admin token {admin}" if ns.auth == "token" else "") + ". Ctrl-C stops both.")
            try:
                while service.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if host.get("inventory") else 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # a second signal must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        if agent is not None:
            _stop(agent)
        _stop(service)


if __name__ == "__main__":
    sys.exit(main())
