"""BMC addresses, asked of the local BMC through ``ipmitool`` when the tool and an IPMI device exist.

Without an IPMI device node ipmitool can only fail, slowly on some kernels, 12 channels times over; so the
device is checked first. The defaults are the Go agent's: ``0.0.0.0`` and ``::/0``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from common.host import Host
from inventory.options import Options

DEFAULT_V4, DEFAULT_V6 = "0.0.0.0", "::/0"
CHANNELS = range(1, 13)
IPMI_DEVICES = ("/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0")
_V4 = re.compile(r"^IP Address\s*:\s*(\S*)", re.MULTILINE)
_ENABLES = re.compile(r"IPv6/IPv4 Addressing Enables\s*:\s*(both|ipv6)", re.IGNORECASE)


def _v4(host: Host) -> str:
    for ch in CHANNELS:
        result = host.run(["ipmitool", "lan", "print", str(ch)], timeout=5)
        if not result.ok:
            continue
        m = _V4.search(result.stdout)
        if m:
            try:
                ip = ipaddress.IPv4Address(m.group(1))
            except ValueError:
                continue
            if not ip.is_unspecified:
                return str(ip)
    return DEFAULT_V4


def parse_lan6(output: str, *, dynamic: bool) -> str | None:
    """The active DHCPv6/SLAAC address (dynamic) or the enabled static one from ``ipmitool lan6 print``.

    Link-local addresses are passed over (unlike the Go agent, which takes the first entry): they cannot be
    reached from another network, so reporting one would only hide the BMC's routable address.
    """
    entries: list[dict[str, str]] = []
    for line in output.splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if not value:  # "IPv6 Dynamic Address 0:" opens an entry
            entries.append({})
        elif entries:
            entries[-1][key] = value
    for e in entries:
        addr = e.get("address", "").split("/")[0]
        try:
            if not addr or ipaddress.IPv6Address(addr).is_link_local:
                continue
        except ValueError:
            continue
        if dynamic and e.get("source/type", "").upper() in ("DHCPV6", "SLAAC") and e.get("status") == "active":
            return addr
        if not dynamic and e.get("enabled", "").lower() == "true":
            return addr
    return None


def _v6(host: Host) -> str:
    for ch in CHANNELS:
        enables = host.run(["ipmitool", "lan6", "print", str(ch), "enables"], timeout=5)
        if not enables.ok or not _ENABLES.search(enables.stdout):
            continue
        for kind, dynamic in (("dynamic_addr", True), ("static_addr", False)):
            result = host.run(["ipmitool", "lan6", "print", str(ch), kind], timeout=5)
            addr = parse_lan6(result.stdout, dynamic=dynamic) if result.ok else None
            if addr:
                return addr
    return DEFAULT_V6


def collect(host: Host, options: Options) -> dict[str, Any]:
    if not host.which("ipmitool") or not any(host.exists(d) for d in IPMI_DEVICES):
        return {"bmc_address": DEFAULT_V4, "bmc_v6address": DEFAULT_V6}
    return {"bmc_address": _v4(host), "bmc_v6address": _v6(host)}
