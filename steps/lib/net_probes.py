"""In-process network probes on raw sockets: ARP, IPv6 neighbour discovery and ICMP echo.

Why not ping/arping/nmap like the Go agent: one process per check made big clusters slow and the tools'
side effects (ARP entries for every probed address) polluted hosts' tables. Here every probe of a step is a
small state machine driven by one select() loop on a handful of shared sockets (one ICMP socket per family and
socket option set, one packet socket per NIC), so hundreds of probes run concurrently under one deadline in a
single thread. Probes only send requests and read answers; the kernel's neighbour tables are not touched by
the ARP probes (unsolicited replies are not learnt with the default ``arp_accept=0``).

Needs CAP_NET_RAW (root), as the Go agent's tools do.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import ipaddress
import itertools
import os
import random
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agent.errors import StepError

ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
IPV6_MTU_DISCOVER = 23
IPV6_DONTFRAG = 62
SO_BINDTODEVICE = 25
ICMP_ECHO_REPLY, ICMP_ECHO = 0, 8
ICMP6_ECHO, ICMP6_ECHO_REPLY = 128, 129
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@contextlib.contextmanager
def raw_sockets(step: str) -> Iterator[None]:
    """Turn the refusal of a raw socket into an error that says what is missing."""
    try:
        yield
    except PermissionError as exc:
        raise StepError(f"{step}: raw sockets are not allowed: {exc.strerror}",
                        hint="run the agent as root (it needs CAP_NET_RAW), as the Go agent's tools do",
                        code="no-raw-sockets") from exc


def checksum(data: bytes) -> int:
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


class Reactor:
    """Timers and readable sockets in one loop; everything runs in the calling thread."""

    def __init__(self) -> None:
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._readers: dict[int, tuple[socket.socket, Callable[[socket.socket], None]]] = {}

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def add_reader(self, sock: socket.socket, fn: Callable[[socket.socket], None]) -> None:
        self._readers[sock.fileno()] = (sock, fn)

    def run(self, finished: Callable[[], bool], deadline: float) -> None:
        """Serve timers and sockets until ``finished()`` or the monotonic ``deadline``."""
        while not finished():
            now = time.monotonic()
            if now >= deadline:
                return
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()
            if finished():
                return
            wait = deadline - now
            if self._timers:
                wait = min(wait, max(0.0, self._timers[0][0] - now))
            fds = list(self._readers)
            if not fds:
                time.sleep(min(wait, 0.05))
                continue
            ready, _, _ = select.select(fds, [], [], wait)
            for fd in ready:
                sock, fn = self._readers[fd]
                fn(sock)


@dataclass
class PingResult:
    sent: int = 0
    rtts_ms: list[float] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    @property
    def loss_percent(self) -> float:
        return (self.sent - self.received) * 100.0 / self.sent if self.sent else 100.0

    @property
    def avg_rtt_ms(self) -> float:
        return round(sum(self.rtts_ms) / len(self.rtts_ms), 3) if self.rtts_ms else 0.0


@dataclass
class _Ping:
    address: IPAddress
    ident: int
    count: int
    interval: float
    wait: float
    payload: bytes
    sock: socket.socket
    on_done: Callable[[PingResult], None] | None
    result: PingResult = field(default_factory=PingResult)
    sent_at: dict[int, float] = field(default_factory=dict)
    last_send: float = 0.0
    done: bool = False


@dataclass
class ArpResult:
    #: The source address the requests carried (arping's "from" address).
    source: str
    #: Every MAC that answered, in the order they first answered.
    macs: list[str] = field(default_factory=list)


@dataclass
class _Arp:
    nic: str
    target: ipaddress.IPv4Address
    result: ArpResult
    frame: bytes
    sock: socket.socket
    started: float = 0.0
    sent: int = 0
    first_reply: float | None = None
    done: bool = False


@dataclass
class _Ndp:
    nic: str
    target: ipaddress.IPv6Address
    sock: socket.socket
    packet: bytes
    dest: tuple[str, int, int, int]
    mac: str | None = None
    started: float = 0.0
    sent: int = 0
    done: bool = False


def _expire(probe: _Arp | _Ndp) -> None:
    probe.done = True


class Prober:
    """Schedules probes, then ``run()`` drives them all concurrently until they finish or the deadline."""

    #: ARP/ND: a request every ARP_INTERVAL seconds, at most ARP_COUNT, until someone answers; then listen
    #: ARP_LINGER more seconds for other answers (address conflicts); give up after ARP_GIVE_UP seconds.
    ARP_INTERVAL, ARP_COUNT, ARP_LINGER, ARP_GIVE_UP = 0.2, 10, 0.25, 3.0

    def __init__(self) -> None:
        self.reactor = Reactor()
        self._pings: dict[int, _Ping] = {}
        self._arps: dict[tuple[str, ipaddress.IPv4Address], list[_Arp]] = {}
        self._ndps: dict[tuple[str, ipaddress.IPv6Address], list[_Ndp]] = {}
        self._icmp_socks: dict[tuple[int, str | None, bool], socket.socket] = {}
        self._arp_socks: dict[str, socket.socket] = {}
        self._all: list[_Ping | _Arp | _Ndp] = []
        self._idents = itertools.count(random.randrange(1, 0xFFFF))
        self._sockets: list[socket.socket] = []

    # -- sockets ----------------------------------------------------------------------------------------
    def _icmp_socket(self, family: int, nic: str | None, dont_fragment: bool) -> socket.socket:
        key = (family, nic, dont_fragment)
        sock = self._icmp_socks.get(key)
        if sock is not None:
            return sock
        proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        sock = socket.socket(family, socket.SOCK_RAW, proto)
        sock.setblocking(False)
        if nic:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, nic.encode())
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        if dont_fragment:
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DO)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        self._icmp_socks[key] = sock
        self._sockets.append(sock)
        self.reactor.add_reader(sock, self._on_icmp)
        return sock

    def _arp_socket(self, nic: str) -> socket.socket:
        sock = self._arp_socks.get(nic)
        if sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            sock.bind((nic, ETH_P_ARP))
            sock.setblocking(False)
            self._arp_socks[nic] = sock
            self._sockets.append(sock)
            self.reactor.add_reader(sock, self._on_arp)
        return sock

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()

    # -- ICMP echo --------------------------------------------------------------------------------------
    def ping(self, address: str, *, count: int = 10, interval: float = 0.1, wait: float = 3.0, size: int = 56,
             nic: str | None = None, dont_fragment: bool = False, start: float | None = None,
             on_done: Callable[[PingResult], None] | None = None) -> PingResult:
        """``count`` echo requests of ``size`` data bytes, ``interval`` apart; done ``wait`` s after the last.

        The result object fills in as replies arrive; ``on_done`` is called once no more are expected.
        """
        addr = ipaddress.ip_address(address)
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        sock = self._icmp_socket(family, nic, dont_fragment)
        ident = next(self._idents) & 0xFFFF
        while ident in self._pings or ident == 0:
            ident = next(self._idents) & 0xFFFF
        probe = _Ping(addr, ident, count, interval, wait, os.urandom(size) if size else b"", sock, on_done)
        self._pings[ident] = probe
        self._all.append(probe)
        begin = time.monotonic() if start is None else start
        for seq in range(count):
            self.reactor.call_at(begin + seq * interval, functools.partial(self._send_echo, probe, seq))
        return probe.result

    def _send_echo(self, probe: _Ping, seq: int) -> None:
        if probe.done:
            return
        kind = ICMP_ECHO if probe.address.version == 4 else ICMP6_ECHO
        header = struct.pack("!BBHHH", kind, 0, 0, probe.ident, seq)
        packet = header + probe.payload
        if probe.address.version == 4:
            packet = struct.pack("!BBHHH", kind, 0, checksum(packet), probe.ident, seq) + probe.payload
        now = time.monotonic()
        probe.result.sent += 1
        probe.last_send = now
        try:
            probe.sock.sendto(packet, (str(probe.address), 0))
            probe.sent_at[seq] = now
        except OSError:
            pass  # unreachable, too big for the NIC with DF set...: counted as sent and lost, as ping does
        if probe.result.sent == probe.count:
            self.reactor.call_at(now + probe.wait, lambda: self._finish_ping(probe))

    def _finish_ping(self, probe: _Ping) -> None:
        if not probe.done:
            probe.done = True
            if probe.on_done:
                probe.on_done(probe.result)

    def _on_icmp(self, sock: socket.socket) -> None:
        while True:
            try:
                data, src = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if sock.family == socket.AF_INET:
                if len(data) < 20:
                    continue
                data = data[(data[0] & 0x0F) * 4 :]
                reply_type = ICMP_ECHO_REPLY
            else:
                reply_type = ICMP6_ECHO_REPLY
                if data and data[0] == ND_NEIGHBOR_ADVERT:
                    self._on_neighbor_advert(data, sock)
                    continue
            if len(data) < 8 or data[0] != reply_type:
                continue
            ident, seq = struct.unpack("!HH", data[4:8])
            probe = self._pings.get(ident)
            if probe is None or probe.done or seq not in probe.sent_at:
                continue
            if ipaddress.ip_address(src[0].split("%")[0]) != probe.address:
                continue
            sent = probe.sent_at.pop(seq)
            probe.result.rtts_ms.append((time.monotonic() - sent) * 1000.0)
            if probe.result.received == probe.count:
                self._finish_ping(probe)

    # -- ARP --------------------------------------------------------------------------------------------
    def arp(self, nic: str, nic_mac: str, source: str, target: str, *, start: float | None = None) -> ArpResult:
        """Who has ``target`` on ``nic``: every MAC that answers (more than one means an address conflict)."""
        tgt = ipaddress.IPv4Address(target)
        src = ipaddress.IPv4Address(source)
        own = mac_bytes(nic_mac)
        frame = (b"\xff" * 6 + own + struct.pack("!H", ETH_P_ARP)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own + src.packed + b"\0" * 6 + tgt.packed)
        probe = _Arp(nic, tgt, ArpResult(str(src)), frame, self._arp_socket(nic))
        self._arps.setdefault((nic, tgt), []).append(probe)
        self._all.append(probe)
        begin = time.monotonic() if start is None else start
        probe.started = begin
        self.reactor.call_at(begin, lambda: self._send_arp(probe))
        self.reactor.call_at(begin + self.ARP_GIVE_UP, functools.partial(_expire, probe))
        return probe.result

    def _send_arp(self, probe: _Arp) -> None:
        if probe.done or probe.first_reply is not None:
            return
        with contextlib.suppress(OSError):
            probe.sock.send(probe.frame)
        probe.sent += 1
        if probe.sent < self.ARP_COUNT:
            self.reactor.call_at(time.monotonic() + self.ARP_INTERVAL, lambda: self._send_arp(probe))

    def _on_arp(self, sock: socket.socket) -> None:
        while True:
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING or len(data) < 42:
                continue
            op = struct.unpack("!H", data[20:22])[0]
            if op != 2:
                continue
            sender_mac = mac_text(data[22:28])
            sender_ip = ipaddress.IPv4Address(data[28:32])
            target_ip = ipaddress.IPv4Address(data[38:42])
            for probe in self._arps.get((addr[0], sender_ip), []):
                if probe.done or str(target_ip) != probe.result.source:
                    continue
                if sender_mac not in probe.result.macs:
                    probe.result.macs.append(sender_mac)
                if probe.first_reply is None:
                    probe.first_reply = time.monotonic()
                    self.reactor.call_at(probe.first_reply + self.ARP_LINGER, functools.partial(_expire, probe))

    # -- IPv6 neighbour discovery -----------------------------------------------------------------------
    def neighbor(self, nic: str, nic_mac: str, ifindex: int, target: str, *,
                 start: float | None = None) -> Callable[[], str | None]:
        """Neighbour solicitation for ``target`` on ``nic``; returns a getter of the first answering MAC."""
        tgt = ipaddress.IPv6Address(target)
        sock = self._icmp_socket(socket.AF_INET6, nic, False)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        solicited = ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + tgt.packed[13:])
        packet = (struct.pack("!BBHI", ND_NEIGHBOR_SOLICIT, 0, 0, 0) + tgt.packed
                  + struct.pack("!BB", 1, 1) + mac_bytes(nic_mac))
        probe = _Ndp(nic, tgt, sock, packet, (str(solicited), 0, 0, ifindex))
        self._ndps.setdefault((nic, tgt), []).append(probe)
        self._all.append(probe)
        begin = time.monotonic() if start is None else start
        self.reactor.call_at(begin, lambda: self._send_ns(probe))
        self.reactor.call_at(begin + self.ARP_GIVE_UP, functools.partial(_expire, probe))
        return lambda: probe.mac

    def _send_ns(self, probe: _Ndp) -> None:
        if probe.done:
            return
        with contextlib.suppress(OSError):
            probe.sock.sendto(probe.packet, probe.dest)
        probe.sent += 1
        if probe.sent < self.ARP_COUNT:
            self.reactor.call_at(time.monotonic() + self.ARP_INTERVAL, lambda: self._send_ns(probe))

    def _on_neighbor_advert(self, data: bytes, sock: socket.socket) -> None:
        if len(data) < 24:
            return
        target = ipaddress.IPv6Address(data[8:24])
        mac = None
        options = data[24:]
        while len(options) >= 8:
            kind, length = options[0], options[1] * 8
            if length == 0:
                break
            if kind == 2:
                mac = mac_text(options[2:8])
            options = options[length:]
        if mac is None:
            return
        nic = next((n for (_f, n, _d), s in self._icmp_socks.items() if s is sock and n), None)
        for (probe_nic, tgt), probes in self._ndps.items():
            if tgt != target or (nic is not None and probe_nic != nic):
                continue
            for probe in probes:
                if not probe.done:
                    probe.mac, probe.done = mac, True

    # -- running ----------------------------------------------------------------------------------------
    def run(self, deadline: float) -> None:
        """Drive every scheduled probe until all are done or the monotonic ``deadline`` passes."""
        try:
            self.reactor.run(lambda: all(p.done for p in self._all), deadline)
        finally:
            self.close()


def arp_sweep(nic: str, nic_mac: str, source: str, targets: list[str], deadline: float, *,
              passes: int = 2, settle: float = 0.5) -> set[str]:
    """ARP-ask for every target (``passes`` rounds for the silent ones); the addresses that answered.

    Like ``nmap -sn -PR``: a burst of requests, a second round for those that stayed silent, then ``settle``
    seconds for late answers. Nothing is learnt into the kernel's neighbour table.
    """
    own = mac_bytes(nic_mac)
    src = ipaddress.IPv4Address(source)
    head = b"\xff" * 6 + own + struct.pack("!H", ETH_P_ARP) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    wanted = {ipaddress.IPv4Address(t).packed: t for t in targets}
    alive: set[str] = set()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((nic, ETH_P_ARP))
        sock.setblocking(False)

        def drain(until: float) -> None:
            while True:
                left = max(0.0, min(until, deadline) - time.monotonic())
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    return
                while True:
                    try:
                        data, addr = sock.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    if addr[2] == PACKET_OUTGOING or len(data) < 42 or data[20:22] != b"\x00\x02":
                        continue
                    if data[38:42] == src.packed and data[28:32] in wanted:
                        alive.add(wanted[data[28:32]])

        for _ in range(passes):
            for packed, text in wanted.items():
                if text in alive:
                    continue
                frame = head + own + src.packed + b"\0" * 6 + packed
                while True:
                    try:
                        sock.send(frame)
                        break
                    except BlockingIOError:
                        drain(time.monotonic() + 0.001)
                    except OSError:
                        break
                drain(time.monotonic())  # keep the receive queue short during big bursts
            drain(time.monotonic() + settle / passes)
        drain(time.monotonic() + settle / 2)
    return alive
