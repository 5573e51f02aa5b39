"""Benchmark: the design card's libraries beside the code we wrote instead (issue 14 item 5, docs/dependencies.md).

Every figure comes from a fresh interpreter (``python -c``), so import costs and peak memory are what a
step process or ``agent inventory`` would pay: wall ms of the import, MiB of peak RSS it adds, and for
each protocol the time of the same work done both ways on this machine (netlink dumps of this namespace,
packets built and parsed, sd_notify datagrams to a socket made here). Nothing leaves the machine.
Run: ``.venv/bin/python bench/dependencies.py [--runs 3]`` (the libraries come with the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Prologue of every measurement: a timer and the peak RSS before the measured code.
_PROLOGUE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
ANSWER = "{answer}"
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss(); t0 = time.perf_counter()
"""
_EPILOGUE = """
print(json.dumps({"ms": (time.perf_counter() - t0) * 1000, "mib": rss() - base, **globals().get("extra", {})}))
"""

#: A DNS answer (api.c.example.com A 10.0.0.5), as scapy builds it, for both parsers.
DNS_ANSWER = ("000181000001000100000000036170690163076578616d706c6503636f6d0000010001036170690163076578616d706c65"
              "03636f6d00000100010000000000040a000005")
IMPORTS = ["requests", "psutil", "systemd.journal", "systemd.daemon", "pyudev", "pyroute2", "scapy.all"]

#: name -> (ours, library): code timed from the start, the import included; ``extra`` is printed too.
WORK: dict[str, tuple[str, str]] = {
    "netlink dump (links, addresses, routes)": (
        """
from inventory.netlink import dump
s = dump()
extra = {"found": [len(s["links"]), len(s["addresses"]), len(s["routes"])]}
t1 = time.perf_counter()
for _ in range(20): dump()
extra["each_ms"] = (time.perf_counter() - t1) / 20 * 1000
""",
        """
import socket
from pyroute2 import IPRoute
def dump():
    with IPRoute() as ip:
        return (list(ip.get_links()), list(ip.get_addr()),
                list(ip.get_routes(family=socket.AF_INET)) + list(ip.get_routes(family=socket.AF_INET6)))
s = dump()
extra = {"found": [len(x) for x in s]}
t1 = time.perf_counter()
for _ in range(20): dump()
extra["each_ms"] = (time.perf_counter() - t1) / 20 * 1000
"""),
    "udev properties of every block device": (
        """
import os
from common.host import Host
from inventory.disks import udev_properties
host = Host.at("/")
props = [udev_properties(host, "/sys/block/" + d) for d in os.listdir("/sys/block")]
extra = {"found": sum(len(p) for p in props)}
""",
        """
import pyudev
props = [dict(d.properties) for d in pyudev.Context().list_devices(subsystem="block", DEVTYPE="disk")]
extra = {"found": sum(len(p) for p in props)}
"""),
    "ICMP echo: build + parse a reply, 1k times": (
        """
from steps.lib import packets
for i in range(1000):
    p = packets.echo_request(4, 77, i & 0xFFFF, b"x" * 56)
    packets.echo_ids(packets.strip_ipv4(bytes(20) .replace(b"\\0", b"\\x45", 1) + p), 8)
""",
        """
from scapy.all import ICMP, IP
for i in range(1000):
    p = bytes(IP(dst="127.0.0.1") / ICMP(id=77, seq=i & 0xFFFF) / (b"x" * 56))
    r = IP(p); (r[ICMP].id, r[ICMP].seq)
"""),
    "ARP who-has: build + parse, 1k times": (
        """
import ipaddress
from steps.lib import packets
mac, s, t = packets.mac_bytes("02:00:00:00:00:01"), ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2")
for _ in range(1000):
    f = packets.arp_request(mac, s, t); packets.arp_reply(f)
""",
        """
from scapy.all import ARP, Ether
for _ in range(1000):
    f = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01") / ARP(psrc="10.0.0.1", pdst="10.0.0.2",
                                                                             hwsrc="02:00:00:00:00:01"))
    Ether(f)[ARP].op
"""),
    "DHCP discover: build, 1k times": (
        """
from steps.lib import dhcp
for i in range(1000):
    dhcp._message(b"\\x02\\0\\0\\0\\0\\x01", i, dhcp.DISCOVER, "host-api", None, None)
""",
        """
from scapy.all import BOOTP, DHCP
for i in range(1000):
    bytes(BOOTP(chaddr=b"\\x02\\0\\0\\0\\0\\x01", xid=i, flags=0x8000) / DHCP(options=[
        ("message-type", "discover"), ("hostname", "host-api"),
        ("param_req_list", [1, 3, 6, 15, 51, 54, 58, 59]), "end"]))
"""),
    "DNS A query: build + parse an answer, 1k times": (
        """
from steps.domain_resolution import decode_answer, encode_query
answer = bytes.fromhex(ANSWER)
for _ in range(1000):
    encode_query(1, "api.c.example.com", 1); decode_answer(answer)
""",
        """
from scapy.all import DNS, DNSQR
answer = bytes.fromhex(ANSWER)
for _ in range(1000):
    bytes(DNS(id=1, rd=1, qd=DNSQR(qname="api.c.example.com"))); DNS(answer).an[0].rdata
"""),
    "sd_notify READY=1, 1k datagrams": (
        """
import os, socket, tempfile
path = os.path.join(tempfile.mkdtemp(), "notify")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); srv.bind(path)
from agent.notify import Notifier
n = Notifier(path)
t0 = time.perf_counter()
for _ in range(1000):
    n.send(ready="1"); srv.recv(64)
""",
        """
import os, socket, tempfile
path = os.path.join(tempfile.mkdtemp(), "notify")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); srv.bind(path)
os.environ["NOTIFY_SOCKET"] = path
from systemd import daemon
t0 = time.perf_counter()
for _ in range(1000):
    daemon.notify("READY=1"); srv.recv(64)
"""),
}


def _short(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def run(code: str) -> dict[str, Any] | str:
    script = _PROLOGUE.format(root=str(ROOT), answer=DNS_ANSWER) + textwrap.dedent(code) + _EPILOGUE
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def best(code: str, runs: int) -> dict[str, Any] | str:
    """The fastest of ``runs`` fresh interpreters (the machine is shared: the least disturbed run)."""
    results = [run(code) for _ in range(runs)]
    good = [r for r in results if isinstance(r, dict)]
    return min(good, key=lambda r: float(r["ms"])) if good else results[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    ns = p.parse_args()
    print(f"{'import':<20} {'wall ms':>8} {'+peak MiB':>9}")
    for module in IMPORTS:
        r = best(f"import {module}\n", ns.runs)
        print(f"{module:<20} {r['ms']:>8.1f} {r['mib']:>9.1f}" if isinstance(r, dict) else f"{module:<20} {r}")
    print("\nwork, import included; 'each' is one netlink dump after the first, in ms")
    print(f"{'':<46} {'ours ms':>8} {'MiB':>5} {'library ms':>10} {'MiB':>5} {'ratio':>6}  notes")
    for name, (mine, theirs) in WORK.items():
        a, b = best(mine, ns.runs), best(theirs, ns.runs)
        if not isinstance(a, dict) or not isinstance(b, dict):
            print(f"{name:<46} ours: {a if isinstance(a, str) else 'ok'}; library: {b if isinstance(b, str) else 'ok'}")
            continue
        notes = "; ".join(f"{k} {_short(a[k])} vs {_short(b[k])}" for k in a if k not in ("ms", "mib") and k in b)
        print(f"{name:<46} {a['ms']:>8.1f} {a['mib']:>5.1f} {b['ms']:>10.1f} {b['mib']:>5.1f} "
              f"{float(b['ms']) / max(float(a['ms']), 0.001):>6.1f}  {notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
