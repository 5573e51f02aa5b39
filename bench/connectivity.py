"""Benchmark: connectivity-check against 5 to 50 remote addresses on a bridge (target: 50 in under 3 s).

Each remote address is its own test host (a network namespace on the harness bridge); the check runs from
one more host through the real runner (``agent step``), so the figures include the step process start.
Run as root: ``.venv/bin/python bench/connectivity.py [--max 50]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.netns import Network


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    ns = p.parse_args()
    sizes = sorted({s for s in (5, 10, 25, 50, ns.max) if s <= ns.max})
    with Network(tag="b") as net:
        t0 = time.monotonic()
        prober = net.add_host()
        remotes = [net.add_host(default_route=False) for _ in range(ns.max)]
        print(f"setup: {ns.max + 1} hosts in {time.monotonic() - t0:.1f} s")
        params = [{"host_id": str(uuid.uuid4()), "nics": [{"name": "eth0", "mac": h.mac,
                                                           "ip_addresses": [h.ipv4]}]} for h in remotes]
        prober.step("connectivity-check", [json.dumps(params[:1])])  # warm caches (pyc, ARP of the hub)
        print(f"{'addresses':>9} {'best s':>7} {'median s':>8} {'per address ms':>14}  all reachable")
        worst_50 = 0.0
        for size in sizes:
            times, ok = [], True
            for _ in range(ns.repeat):
                start = time.monotonic()
                reply = prober.step("connectivity-check", [json.dumps(params[:size])])
                times.append(time.monotonic() - start)
                report = json.loads(reply["output"])
                ok &= len(report["remote_hosts"]) == size and all(
                    r["l2_connectivity"] and r["l2_connectivity"][0].get("successful")
                    and r["l3_connectivity"][0].get("successful") for r in report["remote_hosts"])
            times.sort()
            median = times[len(times) // 2]
            if size == 50:
                worst_50 = times[-1]
            print(f"{size:>9} {times[0]:>7.2f} {median:>8.2f} {1000 * median / size:>14.1f}  {ok}")
        if 50 in sizes:
            verdict = "OK" if worst_50 < 3.0 else "TOO SLOW"
            print(f"50 addresses, slowest run: {worst_50:.2f} s (target < 3 s): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
