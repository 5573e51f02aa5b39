"""Network interfaces: every link the kernel has (lo, ifb, bridges included), as Go's net.Interfaces has them.

Links and addresses come from netlink (see :mod:`inventory.netlink`), the per-device facts (carrier,
speed, PCI ids, whether the device is virtual) from ``/sys/class/net``. Bond members report their permanent
MAC, not the bond's, so the host id and the service's NIC matching stay stable when a bond fails over.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from common.host import Host
from inventory.options import Options

#: Go's net.Flags names, in the order Go prints them, with the IFF_* bits they come from.
FLAG_NAMES = (
    ("up", 0x1),
    ("broadcast", 0x2),
    ("loopback", 0x8),
    ("pointtopoint", 0x10),
    ("multicast", 0x1000),
    ("running", 0x40),
)
#: RTPROT_RA: a route learnt from router advertisements; its prefix is the real one of a /128 address.
RTPROT_RA = 9


def flag_names(flags: int) -> list[str]:
    return [name for name, bit in FLAG_NAMES if flags & bit]


def link_type(host: Host, name: str, kind: str | None) -> str:
    """``physical`` for a device behind a bus, else the netlink kind as the Go netlink library names it."""
    if "/virtual/" not in host.realpath(f"/sys/class/net/{name}"):
        return "physical"
    if not kind:
        return "device"
    return "tuntap" if kind == "tun" else kind


def _ra_prefixes(routes: list[dict[str, Any]]) -> dict[int, list[ipaddress.IPv6Network]]:
    out: dict[int, list[ipaddress.IPv6Network]] = {}
    for r in routes:
        if r.get("family") == 10 and r.get("protocol") == RTPROT_RA and r.get("dst") and r.get("oif"):
            try:
                out.setdefault(int(r["oif"]), []).append(ipaddress.IPv6Network(f"{r['dst']}/{r['dst_len']}"))
            except ValueError:
                continue
    return out


def addresses(snapshot: dict[str, list[dict[str, Any]]]) -> dict[int, tuple[list[str], list[str]]]:
    """Link index -> (IPv4 CIDRs, IPv6 CIDRs), link-local left out, /128s widened to their RA prefix."""
    ra = _ra_prefixes(snapshot["routes"])
    out: dict[int, tuple[list[str], list[str]]] = {}
    for a in snapshot["addresses"]:
        ip = ipaddress.ip_address(a["address"])
        if ip.is_link_local:
            continue
        index, prefix = int(a["index"]), int(a["prefixlen"])
        v4, v6 = out.setdefault(index, ([], []))
        if ip.version == 4:
            v4.append(f"{ip}/{prefix}")
            continue
        if prefix == 128:
            prefix = next((n.prefixlen for n in ra.get(index, []) if ip in n), prefix)
        v6.append(f"{ip}/{prefix}")
    return out


def _int_attr(host: Host, path: str) -> int:
    text = host.read_attr(path)
    try:
        return int(text or "")
    except ValueError:
        return 0


def collect(host: Host, options: Options) -> dict[str, Any]:
    snap = options.netlink(host)
    addrs = addresses(snap)
    biosdevname = bool(host.which("biosdevname"))
    interfaces = []
    for link in sorted(snap["links"], key=lambda li: int(li["index"])):
        name = str(link["name"])
        base = f"/sys/class/net/{name}"
        v4, v6 = addrs.get(int(link["index"]), ([], []))
        iface: dict[str, Any] = {
            "name": name,
            "mtu": int(link.get("mtu") or 0),
            "mac_address": host.read_attr(f"{base}/bonding_slave/perm_hwaddr") or link.get("address") or "",
            "flags": flag_names(int(link.get("flags") or 0)),
            "has_carrier": host.read_attr(f"{base}/carrier") == "1",
            "ipv4_addresses": v4,
            "ipv6_addresses": v6,
            "product": host.read_attr(f"{base}/device/device") or "",
            "vendor": host.read_attr(f"{base}/device/vendor") or "",
            "speed_mbps": _int_attr(host, f"{base}/speed"),
            "type": link_type(host, name, link.get("kind")),
        }
        if biosdevname and iface["type"] == "physical":
            result = host.run(["biosdevname", "-i", name], timeout=5)
            if result.ok:
                iface["biosdevname"] = result.stdout.strip()
        interfaces.append(iface)
    return {"interfaces": interfaces}
