"""The inventory's netlink dump, ours (inventory/netlink.py) beside pyroute2's, each in fresh processes.

    .venv/bin/python bench/inventory_netlink.py [-n 9]

What ``agent inventory`` needs from netlink is one dump of links, addresses and routes per run; a run is a
fresh process, so the import is part of the price. Prints CPU time (user + system, less sensitive to this
shared machine's load than wall time) and peak RSS of each, medians, with the bare interpreter beside them.
Figures are printed, not asserted; docs/dependencies.md records what they decided.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CASES = {
    "bare interpreter (python -c pass)": "pass",
    "ours: import + dump": "from common.host import Host\nfrom inventory import netlink\nnetlink.snapshot(Host())",
    "pyroute2: import only": "import pyroute2",
    "pyroute2: import + dump": "from pyroute2 import IPRoute\nwith IPRoute() as ip:\n"
                               "    ip.get_links(); ip.get_addr(); ip.get_routes(family=2); ip.get_routes(family=10)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=9, help="rounds (default 9), alternating the cases")
    ns = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    for _ in range(ns.n):
        for name, code in CASES.items():
            proc = subprocess.Popen([sys.executable, "-c", code])
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{name} failed")
            results[name].append(((usage.ru_utime + usage.ru_stime) * 1000, usage.ru_maxrss / 1024))
    bare = statistics.median(c for c, _ in results["bare interpreter (python -c pass)"])
    print(f"netlink dump for the inventory: {ns.n} rounds, medians (load average {os.getloadavg()[0]:.1f})")
    for name, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        rss = statistics.median(r for _, r in runs)
        print(f"  {name:36} cpu {cpu:7.1f} ms ({cpu - bare:+7.1f} over bare)  peak RSS {rss:5.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
