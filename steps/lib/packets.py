"""Wire formats of the probes' packets: ICMP and ICMPv6 echo, ARP, IPv6 neighbour solicitation and advert.

Pure functions over bytes, apart from sockets and time, so every parser can be fed garbage in a unit test.
Why by hand and not scapy: a probe packet is one ``struct.pack`` (about 1 us) where scapy builds and dissects
layer objects (tens of microseconds per packet, and a 1 s import); docs/dependencies.md has the figures.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_ARP = 0x0806
ICMP_ECHO_REPLY, ICMP_ECHO = 0, 8
ICMP6_ECHO, ICMP6_ECHO_REPLY = 128, 129
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
ARP_REQUEST, ARP_REPLY = 1, 2
#: Ethernet header, then ARP's fixed part for Ethernet/IPv4 (hardware type 1, protocol 0x0800, lengths 6 and 4).
_ARP_HEAD = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST)
ARP_FRAME_LEN = 42


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def echo_request(version: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request; ICMPv6's checksum covers a pseudo-header, so the kernel fills it in for raw sockets."""
    kind = ICMP_ECHO if version == 4 else ICMP6_ECHO
    packet = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    if version == 4:
        packet = struct.pack("!BBHHH", kind, 0, checksum(packet), ident, seq) + payload
    return packet


def echo_ids(icmp: bytes, kind: int) -> tuple[int, int] | None:
    """(ident, seq) of an ICMP message of type ``kind``; None for anything else or too short."""
    if len(icmp) < 8 or icmp[0] != kind:
        return None
    ident, seq = struct.unpack("!HH", icmp[4:8])
    return ident, seq


def strip_ipv4(packet: bytes) -> bytes:
    """What a raw IPv4 socket hands over starts with the IP header; the ICMP message is after it."""
    if len(packet) < 20:
        return b""
    return packet[(packet[0] & 0x0F) * 4 :]


def arp_request(own_mac: bytes, source: ipaddress.IPv4Address, target: ipaddress.IPv4Address) -> bytes:
    """A broadcast who-has ``target`` from ``source``, as arping sends it."""
    return (b"\xff" * 6 + own_mac + struct.pack("!H", ETH_P_ARP) + _ARP_HEAD
            + own_mac + source.packed + b"\0" * 6 + target.packed)


def arp_reply(frame: bytes) -> tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
    """(sender MAC, sender IP, target IP) of an ARP reply frame; None for anything else."""
    if len(frame) < ARP_FRAME_LEN or frame[20:22] != struct.pack("!H", ARP_REPLY):
        return None
    return (mac_text(frame[22:28]), ipaddress.IPv4Address(frame[28:32]), ipaddress.IPv4Address(frame[38:42]))


def neighbor_solicit(own_mac: bytes, target: ipaddress.IPv6Address) -> tuple[bytes, ipaddress.IPv6Address]:
    """A neighbour solicitation for ``target`` with our link-layer address, and its solicited-node group."""
    group = ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target.packed[13:])
    packet = struct.pack("!BBHI", ND_NEIGHBOR_SOLICIT, 0, 0, 0) + target.packed + struct.pack("!BB", 1, 1) + own_mac
    return packet, group


def neighbor_advert(icmp6: bytes) -> tuple[ipaddress.IPv6Address, str] | None:
    """(target, its MAC from the target link-layer option) of a neighbour advert; None without either."""
    if len(icmp6) < 24 or icmp6[0] != ND_NEIGHBOR_ADVERT:
        return None
    target = ipaddress.IPv6Address(icmp6[8:24])
    options = icmp6[24:]
    while len(options) >= 8:
        kind, length = options[0], options[1] * 8
        if length == 0:
            break
        if kind == 2:
            return target, mac_text(options[2:8])
        options = options[length:]
    return None
