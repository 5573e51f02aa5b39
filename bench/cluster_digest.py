"""Benchmark: the cluster digest against today's per-host majority rule, at 100, 300 and 1,000 hosts.

Each host is a swarm host (``swarm/machine.py``): the recorded machine's inventory and a
dry-run connectivity report that reaches every other host, as stored on the host documents (JSON strings).
Prints, per size: the first digest (every report parsed once), a digest after one host's report changed (one
report parsed), the memo's memory (tracemalloc, the digest's own allocations, not the documents), and one
call of the per-host ``in_majority_group`` (what each host's validation costs today on every poll).
Run: ``.venv/bin/python bench/cluster_digest.py [--sizes 100,300,1000] [--per-host-max 1000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rules.cluster_digest import DigestMemo, digest, in_majority_group
from swarm.machine import SWARM_NETWORK, SimHost, connectivity_report, inventory, sim_host

CLUSTER = {"id": "bench", "name": "bench", "machine_networks": [{"cidr": str(SWARM_NETWORK)}]}


def _peer(sim: SimHost) -> dict[str, Any]:
    return {"host_id": sim.host_id, "nics": [{"name": "ens1f0", "mac": sim.mac, "ip_addresses": [sim.ip]}]}


def cluster_hosts(n: int) -> list[dict[str, Any]]:
    """``n`` host documents with their inventory and a full connectivity report, as JSON strings."""
    sims = [sim_host(i, seed="bench") for i in range(n)]
    peers = [_peer(s) for s in sims]
    hosts = []
    for i, sim in enumerate(sims):
        others = peers[:i] + peers[i + 1:]
        hosts.append({"id": sim.host_id, "role": "auto-assign", "status": "known",
                      "inventory": json.dumps(inventory(sim)),
                      "connectivity": json.dumps(connectivity_report([json.dumps(others)]))})
    return hosts


def _timed(func: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def run(n: int, per_host: bool) -> dict[str, Any]:
    hosts = cluster_hosts(n)
    report_mb = sum(len(h["connectivity"]) for h in hosts) / 1e6
    memo = DigestMemo()
    first, result = _timed(lambda: digest(CLUSTER, hosts, memo))
    assert len(result.majority[str(SWARM_NETWORK)]) == n, "a full mesh is all majority"
    changed = dict(hosts[n // 2])
    report = json.loads(changed["connectivity"])
    report["remote_hosts"][0]["l2_connectivity"] = []
    changed["connectivity"] = json.dumps(report)
    hosts[n // 2] = changed
    parsed = memo.parsed
    again, _ = _timed(lambda: digest(CLUSTER, hosts, memo))
    assert memo.parsed == parsed + 1, "only the changed report is parsed again"
    unchanged, _ = _timed(lambda: digest(CLUSTER, hosts, memo))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fresh = DigestMemo()
    kept = digest(CLUSTER, hosts, fresh)
    memo_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del kept
    one = None
    if per_host:
        one, _ = _timed(lambda: in_majority_group(hosts[1]["id"], hosts, SWARM_NETWORK))
    return {"hosts": n, "reports_mb": report_mb, "first_s": first, "one_changed_s": again,
            "unchanged_s": unchanged, "memo_mb": memo_bytes / 1e6, "per_host_s": one}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,300,1000")
    p.add_argument("--per-host-max", type=int, default=1000, help="skip the per-host rule above this size")
    ns = p.parse_args()
    print("| hosts | reports (MB of JSON) | first digest | after one report changed | nothing changed "
          "| memo memory | per-host in_majority_group, one host |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(s) for s in ns.sizes.split(",")):
        r = run(n, per_host=n <= ns.per_host_max)
        per_host = "skipped" if r["per_host_s"] is None else f"{r['per_host_s']:.2f} s"
        print(f"| {r['hosts']} | {r['reports_mb']:.1f} | {r['first_s']:.2f} s | {r['one_changed_s'] * 1e3:.0f} ms "
              f"| {r['unchanged_s'] * 1e3:.0f} ms | {r['memo_mb']:.2f} MB | {per_host} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
