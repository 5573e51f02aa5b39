"""Benchmark: free-network-addresses over a /24 with a few live hosts, against ``nmap -sn -PR`` (target < 3 s).

Both scan the same subnet from the same test host in the same run; their findings are compared too.
Run as root: ``.venv/bin/python bench/free_addresses.py [--live 5]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.netns import SUBNET4, Network


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--live", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    ns = p.parse_args()
    cidr = str(SUBNET4)
    with Network(tag="b") as net:
        scanner = net.add_host()
        for _ in range(ns.live):
            net.add_host(default_route=False)
        scanner.step("free-network-addresses", [json.dumps([cidr])])  # warm up
        ours, theirs = [], []
        free: set[str] = set()
        nmap_up: set[str] = set()
        for _ in range(ns.repeat):
            start = time.monotonic()
            reply = scanner.step("free-network-addresses", [json.dumps([cidr])])
            ours.append(time.monotonic() - start)
            free = set(json.loads(reply["output"])[0]["free_addresses"])
            start = time.monotonic()
            proc = scanner.run(["nmap", "-sn", "-PR", "-n", "-oX", "-", cidr], timeout=120)
            theirs.append(time.monotonic() - start)
            nmap_up = set(re.findall(r'<status state="up"[^>]*/>\s*<address addr="([0-9.]+)"', proc.stdout))
        everyone = {str(a) for a in ipaddress.ip_network(cidr)}
        ours.sort()
        theirs.sort()
        print(f"subnet {cidr}, {ns.live} live hosts + hub + scanner, {ns.repeat} runs each")
        print(f"free-network-addresses (agent step, incl. process start): best {ours[0]:.2f} s, "
              f"median {ours[len(ours) // 2]:.2f} s")
        print(f"nmap -sn -PR:                                           best {theirs[0]:.2f} s, "
              f"median {theirs[len(theirs) // 2]:.2f} s")
        print(f"ratio nmap / ours (median): {theirs[len(theirs) // 2] / ours[len(ours) // 2]:.1f}x")
        used_ours = everyone - free
        print(f"used addresses: ours {len(used_ours)}, nmap {len(nmap_up)}, same set: {used_ours == nmap_up}")
        print(f"slowest of ours: {ours[-1]:.2f} s (target < 3 s): {'OK' if ours[-1] < 3.0 else 'TOO SLOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
