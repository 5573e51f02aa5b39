"""Hostname, and the Go agent's replacement of ``localhost`` names by a MAC-derived one.

Several hosts all called ``localhost`` would fail the service's hostname validations (forbidden, not unique),
so such a name is replaced by the MAC of the first addressed physical or VLAN interface (PR #449).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from common.host import Host
from common.hostnames import FORBIDDEN
from inventory.options import Options


def collect(host: Host, options: Options) -> dict[str, Any]:
    name = host.read_attr("/proc/sys/kernel/hostname")
    if name is None and host.is_live:
        name = socket.gethostname()
    return {"hostname": (name or "").strip()}


def _global_unicast(cidr: str) -> bool:
    ip = ipaddress.ip_interface(cidr).ip
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def replace_localhost(hostname: str, interfaces: list[dict[str, Any]]) -> str:
    """The hostname to report: unchanged unless it is a localhost name and an addressed NIC has a MAC."""
    if hostname not in FORBIDDEN:
        return hostname
    for iface in sorted(interfaces, key=lambda i: str(i.get("name", ""))):
        if iface.get("type") not in ("physical", "vlan") or not iface.get("mac_address"):
            continue
        cidrs = [*(iface.get("ipv4_addresses") or []), *(iface.get("ipv6_addresses") or [])]
        if any(_global_unicast(c) for c in cidrs):
            return str(iface["mac_address"]).lower().replace(":", "-")
    return hostname
