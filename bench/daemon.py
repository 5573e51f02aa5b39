"""Daemon figures: time from process start to the first step reply posted, and resident memory between polls.

    .venv/bin/python bench/daemon.py [--runs 5]

Targets (issue "agent core"): first reply under 1 s on loopback; daemon RSS between polls at most 35 MiB
(step code runs in child processes and never enters the daemon). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from rules.states import OFF_HOST_STEPS

BIN = Path(sys.executable).parent
BASE = "/api/assisted-install"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_running(pid: int) -> bool:
    import psutil

    return bool(psutil.Process(pid).children())


def one_run(url: str, ie: str, work: Path, index: int) -> tuple[float, float, float]:
    host_id = f"00000000-0000-0000-0000-{index:012d}"
    env = {**os.environ, "AGENT_STATE_DIR": str(work / f"state-{index}"), "AGENT_CONFIG": "/nonexistent"}
    cmd = [str(BIN / "agent"), "--url", url, "--infra-env-id", ie, "--interval", "1", "--host-id", host_id,
           "--agent-version", "bench"]
    start_wall = time.time()
    with open(work / f"agent-{index}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        first = None
        while first is None and time.time() - start_wall < 30:
            replies = requests.get(f"{url}/api/reference/hosts/{host_id}/replies", timeout=5).json()
            if replies:
                first = replies[0]["received_at"] - start_wall
            else:
                time.sleep(0.01)
        # memory between polls: sample while no step child is running, over a few poll cycles
        samples = []
        end = time.time() + 6
        while time.time() < end:
            if not children_running(proc.pid):
                samples.append(rss_mib(proc.pid))
            time.sleep(0.05)
        return first or float("nan"), max(samples or [0.0]), statistics.median(samples or [0.0])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=40)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    ns = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    ready = work / "url"
    svc = subprocess.Popen([str(BIN / "assisted-reference-service"), "--port", "0", "--db", str(work / "db"),
                            "--next-step-seconds", "1", "--ready-file", str(ready)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                           env={**os.environ, "DISABLED_STEPS": ",".join(OFF_HOST_STEPS)})
    try:
        while not ready.exists():
            time.sleep(0.05)
        url = ready.read_text()
        cluster = requests.post(url + BASE + "/v2/clusters", json={
            "name": "bench", "openshift_version": "4.16", "pull_secret": "{}", "control_plane_count": 1},
            timeout=10).json()
        ie = requests.post(url + BASE + "/v2/infra-envs", json={
            "name": "bench", "pull_secret": "{}", "cluster_id": cluster["id"]}, timeout=10).json()["id"]
        results = [one_run(url, ie, work, i) for i in range(ns.runs)]
    finally:
        os.killpg(svc.pid, signal.SIGTERM)
        svc.wait(timeout=20)
    firsts = [r[0] for r in results]
    peaks = [r[1] for r in results]
    print(json.dumps({"runs": ns.runs,
                      "first_reply_s": {"median": round(statistics.median(firsts), 3),
                                        "max": round(max(firsts), 3), "target": 1.0},
                      "daemon_rss_between_polls_mib": {"median": round(statistics.median(r[2] for r in results), 1),
                                                       "max": round(max(peaks), 1), "target": 35.0}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
