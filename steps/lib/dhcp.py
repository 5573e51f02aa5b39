"""A DHCPv4 client for one lease, on a packet socket (RFC 2131), and the lease in dhclient's file format.

Why not dhclient, as the Go agent runs it: the discovery image's agent should not depend on a client that
distributions are retiring, and the exchange the step needs (one address for a MAC that is not the NIC's own,
renewed from a previous lease) is a few packets. The service stores the lease text and hands it back on the
next allocation, and its parser expects dhclient's ``lease { ... }`` block, so that is the format produced.

Frames are built by hand: Ethernet, IPv4 (source 0.0.0.0 until an address is leased), UDP 68 -> 67, BOOTP.
The BROADCAST flag asks servers to broadcast their answers, which the packet socket sees whatever the
interface's addresses.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import socket
import struct
import time
from dataclasses import dataclass, field

from common.errors import StepError
from steps.lib.packets import checksum, mac_bytes

ETH_P_IP = 0x0800
MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK = 1, 2, 3, 4, 5, 6
#: subnet mask, routers, DNS servers, domain name, lease time, server id, renewal (T1), rebinding (T2)
PARAMETERS = bytes([1, 3, 6, 15, 51, 54, 58, 59])
RETRANSMIT = 2.0


@dataclass
class Lease:
    address: str
    server: str
    options: dict[int, bytes] = field(default_factory=dict)
    acquired: float = field(default_factory=time.time)

    def seconds(self, code: int, default: int) -> int:
        raw = self.options.get(code)
        return struct.unpack("!I", raw)[0] if raw and len(raw) == 4 else default

    def to_text(self, interface: str) -> str:
        """The lease as dhclient writes it to its lease file (times in UTC, weekday first)."""
        lease_time = self.seconds(51, 3600)
        lines = [f'  interface "{interface}";', f"  fixed-address {self.address};"]
        for code, name in ((1, "subnet-mask"), (3, "routers"), (6, "domain-name-servers")):
            raw = self.options.get(code)
            if raw and len(raw) % 4 == 0:
                addresses = [socket.inet_ntoa(raw[i : i + 4]) for i in range(0, len(raw), 4)]
                lines.append(f"  option {name} {','.join(addresses)};")
        lines.append(f"  option dhcp-lease-time {lease_time};")
        lines.append(f"  option dhcp-message-type {ACK};")
        if 15 in self.options:
            lines.append(f'  option domain-name "{self.options[15].decode(errors="replace").rstrip(chr(0))}";')
        lines.append(f"  option dhcp-server-identifier {self.server};")
        for name, after in (("renew", self.seconds(58, lease_time // 2)),
                            ("rebind", self.seconds(59, lease_time * 7 // 8)), ("expire", lease_time)):
            stamp = time.gmtime(self.acquired + after)
            lines.append(f"  {name} {(stamp.tm_wday + 1) % 7} {time.strftime('%Y/%m/%d %H:%M:%S', stamp)};")
        return "lease {\n" + "\n".join(lines) + "\n}\n"


def previous_address(lease_text: str | None) -> str | None:
    """The address of the last lease in a dhclient lease file, to ask for it again."""
    found = re.findall(r"fixed-address\s+([0-9.]+)\s*;", lease_text or "")
    if not found:
        return None
    try:
        return str(ipaddress.IPv4Address(found[-1]))
    except ValueError:
        return None


def _options(pairs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([code, len(value)]) + value for code, value in pairs) + b"\xff"


def _message(mac: bytes, xid: int, kind: int, hostname: str, requested: str | None, server: str | None) -> bytes:
    options = [(53, bytes([kind])), (61, b"\x01" + mac), (12, hostname.encode()[:63])]
    if requested:
        options.append((50, socket.inet_aton(requested)))
    if server:
        options.append((54, socket.inet_aton(server)))
    options.append((55, PARAMETERS))
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4),
                        bytes(4), mac.ljust(16, b"\0"), bytes(64), bytes(128))
    payload = bootp + MAGIC + _options(options)
    payload += bytes(max(0, 300 - len(payload)))  # BOOTP's minimum, which some relays insist on
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     bytes(4), b"\xff\xff\xff\xff")
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_IP) + ip + udp


def _parse(frame: bytes, mac: bytes, xid: int) -> tuple[int, str, dict[int, bytes]] | None:
    """(message type, offered address, options) of a server's answer to this exchange, else None."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != struct.pack("!H", ETH_P_IP):
        return None
    ip = frame[14:]
    header = (ip[0] & 0x0F) * 4
    if ip[9] != socket.IPPROTO_UDP:
        return None
    udp = ip[header:]
    if struct.unpack("!H", udp[2:4])[0] != 68:
        return None
    bootp = udp[8:]
    if bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid or bootp[28:34] != mac or bootp[236:240] != MAGIC:
        return None
    options: dict[int, bytes] = {}
    rest = bootp[240:]
    i = 0
    while i < len(rest) and rest[i] != 255:
        if rest[i] == 0:
            i += 1
            continue
        if i + 1 >= len(rest):
            break
        code, length = rest[i], rest[i + 1]
        options[code] = options.get(code, b"") + rest[i + 2 : i + 2 + length]
        i += 2 + length
    kind = options.get(53, b"\0")[0]
    return kind, socket.inet_ntoa(bootp[16:20]), options


def acquire(interface: str, mac: str, *, hostname: str, previous: str | None, deadline: float) -> Lease:
    """Lease an address for ``mac`` on ``interface``: INIT-REBOOT with the previous address if there is one
    (a NAK or silence falls back), then DISCOVER, OFFER, REQUEST, ACK, retransmitting every 2 s."""
    raw_mac = mac_bytes(mac)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
        sock.bind((interface, ETH_P_IP))
        sock.setblocking(False)

        def exchange(kind: int, requested: str | None, server: str | None, want: int, until: float,
                     ) -> tuple[str, dict[int, bytes]] | None:
            xid = int.from_bytes(os.urandom(4), "big")
            frame = _message(raw_mac, xid, kind, hostname, requested, server)
            next_send = 0.0
            while (now := time.monotonic()) < until:
                if now >= next_send:
                    sock.send(frame)
                    next_send = now + RETRANSMIT
                ready, _, _ = select.select([sock], [], [], max(0.0, min(next_send, until) - now))
                while ready:
                    try:
                        answer = _parse(sock.recv(4096), raw_mac, xid)
                    except BlockingIOError:
                        break
                    if answer is None:
                        continue
                    got, address, options = answer
                    if got == NAK:
                        return None
                    if got == want:
                        return address, options
            return None

        if previous:
            acked = exchange(REQUEST, previous, None, ACK, min(deadline, time.monotonic() + 3 * RETRANSMIT))
            if acked:
                return Lease(acked[0], socket.inet_ntoa(acked[1].get(54, bytes(4))[:4]), acked[1])
        while time.monotonic() < deadline:
            offered = exchange(DISCOVER, None, None, OFFER, deadline)
            if offered is None:
                break
            address, options = offered
            server = socket.inet_ntoa(options.get(54, bytes(4))[:4])
            acked = exchange(REQUEST, address, server, ACK, deadline)
            if acked:
                return Lease(acked[0], server, acked[1])
    raise StepError(f"no DHCP lease for {mac} on {interface}: no server answered before the deadline",
                    code="dhcp-no-lease")
