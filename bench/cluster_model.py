"""Benchmark: the cluster model (``rules/cluster_model.py``) at 100, 300 and 1,000 hosts.

Each host is a swarm host (``reference_service/swarm_machine.py``): the recorded machine's inventory and a
dry-run connectivity report that reaches every other host, as stored on the host documents (JSON strings).
Prints, per size: the first sync and grouping (every report parsed once), a sync and grouping after one
host's report changed (one report parsed), a sync with nothing changed, the model's memory (tracemalloc, its
own allocations, not the documents'), and the majority groups of reports in flux (each host's report reaches
a random prefix of the hosts, as in a discovery's first minutes): the real service's rule at its costliest.
Run: ``.venv/bin/python bench/cluster_model.py [--sizes 100,300,1000]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rules import cluster_model
from rules.cluster_model import ClusterModel
from rules.majority import majority_group, mutual_links
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


def run(n: int) -> dict[str, Any]:
    hosts = cluster_hosts(n)
    report_mb = sum(len(h["connectivity"]) for h in hosts) / 1e6
    decoded = [0]
    real = cluster_model.decode

    def counted(raw: Any) -> Any:
        decoded[0] += 1
        return real(raw)

    cluster_model.decode = counted
    model = ClusterModel()

    def sync_and_group() -> None:
        model.sync(CLUSTER, hosts)
        model.regroup()

    first, _ = _timed(sync_and_group)
    assert model.in_majority(hosts[0]["id"], SWARM_NETWORK), "a full mesh is all majority"
    changed = dict(hosts[n // 2])
    report = json.loads(changed["connectivity"])
    report["remote_hosts"][0]["l2_connectivity"] = []
    changed["connectivity"] = json.dumps(report)
    hosts[n // 2] = changed
    before = decoded[0]
    again, _ = _timed(sync_and_group)
    assert decoded[0] == before + 1, "only the changed report is parsed again"
    unchanged, _ = _timed(lambda: model.sync(CLUSTER, hosts))
    cluster_model.decode = real
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fresh = ClusterModel()
    fresh.sync(CLUSTER, hosts)
    fresh.regroup()
    model_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del fresh
    rng = random.Random(n)
    prefixes = {i: (1 << rng.randrange(n)) - 1 | (1 << i) for i in range(n)}
    in_flux, _ = _timed(lambda: majority_group(mutual_links(prefixes), rank=lambda i: i))
    return {"hosts": n, "reports_mb": report_mb, "first_s": first, "one_changed_s": again,
            "unchanged_s": unchanged, "model_mb": model_bytes / 1e6, "in_flux_s": in_flux}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,300,1000")
    ns = p.parse_args()
    print("| hosts | reports (MB of JSON) | first sync and groups | after one report changed | nothing changed "
          "| model memory | groups of reports in flux |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(s) for s in ns.sizes.split(",")):
        r = run(n)
        print(f"| {r['hosts']} | {r['reports_mb']:.1f} | {r['first_s']:.2f} s | {r['one_changed_s'] * 1e3:.0f} ms "
              f"| {r['unchanged_s'] * 1e3:.1f} ms | {r['model_mb']:.2f} MB | {r['in_flux_s'] * 1e3:.0f} ms |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
