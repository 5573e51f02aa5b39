"""In-process network probes on raw sockets: ARP, IPv6 neighbour discovery and ICMP echo.

Why not ping/arping/nmap like the Go agent: one process per check made big clusters slow and the tools'
side effects (ARP entries for every probed address) polluted hosts' tables. Here every probe of a step is a
small state machine driven by one select() loop (steps.lib.reactor) on a handful of shared sockets (one ICMP
socket per family and socket option set, one packet socket per NIC), so hundreds of probes run concurrently
under one deadline in a single thread. Probes only send requests and read answers; the kernel's neighbour
tables are not touched by the ARP probes (unsolicited replies are not learnt with the default ``arp_accept=0``).

Round trips are kernel times (steps.lib.kernel_time): the send stamp of the device taking the request and the
receive stamp of the answer, so a reply the process reads late on a busy machine still reports the network's
time, as ping's does.

Needs CAP_NET_RAW (root), as the Go agent's tools do.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from common.errors import StepError
from steps.lib import kernel_time, packets
from steps.lib.packets import ETH_P_ARP
from steps.lib.reactor import Reactor

PACKET_OUTGOING = 4
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
IPV6_MTU_DISCOVER = 23
IPV6_DONTFRAG = 62
SO_BINDTODEVICE = 25
RECV_SIZE = 65535

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


def _rtt_ms(sent_ns: int, received_ns: int) -> float:
    return max(0.0, (received_ns - sent_ns) / 1e6)


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
    #: seq -> send time in ns: taken just before sendto, replaced by the kernel's stamp when it comes.
    sent_at: dict[int, int] = field(default_factory=dict)
    done: bool = False


@dataclass
class ArpResult:
    #: The source address the requests carried (arping's "from" address).
    source: str
    #: Every MAC that answered, in the order they first answered.
    macs: list[str] = field(default_factory=list)
    #: Round trip of the first answer, from the last request sent before it.
    rtt_ms: float | None = None


@dataclass
class NeighborResult:
    #: The first MAC that answered.
    mac: str | None = None
    rtt_ms: float | None = None


@dataclass
class _Arp:
    nic: str
    target: ipaddress.IPv4Address
    result: ArpResult
    frame: bytes
    sock: socket.socket
    sent: int = 0
    last_sent_ns: int = 0
    first_reply: float | None = None
    done: bool = False


@dataclass
class _Ndp:
    nic: str
    target: ipaddress.IPv6Address
    sock: socket.socket
    packet: bytes
    dest: tuple[str, int, int, int]
    result: NeighborResult = field(default_factory=NeighborResult)
    sent: int = 0
    last_sent_ns: int = 0
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
        self._socket_nic: dict[socket.socket, str | None] = {}
        self._arp_socks: dict[str, socket.socket] = {}
        self._all: list[_Ping | _Arp | _Ndp] = []
        self._idents = itertools.count(random.randrange(1, 0xFFFF))

    # -- sockets ----------------------------------------------------------------------------------------
    def _icmp_socket(self, family: int, nic: str | None, dont_fragment: bool) -> socket.socket:
        key = (family, nic, dont_fragment)
        sock = self._icmp_socks.get(key)
        if sock is not None:
            return sock
        proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        sock = socket.socket(family, socket.SOCK_RAW, proto)
        self._socket_nic[sock] = nic
        sock.setblocking(False)
        kernel_time.enable(sock)
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
        self.reactor.add_reader(sock, self._on_icmp)
        return sock

    def _arp_socket(self, nic: str) -> socket.socket:
        sock = self._arp_socks.get(nic)
        if sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            self._socket_nic[sock] = nic
            sock.bind((nic, ETH_P_ARP))
            sock.setblocking(False)
            kernel_time.enable(sock)
            self._arp_socks[nic] = sock
            self.reactor.add_reader(sock, self._on_arp)
        return sock

    def close(self) -> None:
        for sock in self._socket_nic:
            with contextlib.suppress(OSError):
                sock.close()
        self._socket_nic.clear()

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
        packet = packets.echo_request(probe.address.version, probe.ident, seq, probe.payload)
        probe.result.sent += 1
        try:
            sent_ns = kernel_time.now_ns()
            probe.sock.sendto(packet, (str(probe.address), 0))
            probe.sent_at[seq] = sent_ns
        except OSError:
            pass  # unreachable, too big for the NIC with DF set...: counted as sent and lost, as ping does
        if probe.result.sent == probe.count:
            self.reactor.call_at(time.monotonic() + probe.wait, lambda: self._finish_ping(probe))

    def _finish_ping(self, probe: _Ping) -> None:
        if not probe.done:
            probe.done = True
            if probe.on_done:
                probe.on_done(probe.result)

    def _on_icmp(self, sock: socket.socket) -> None:
        version = 4 if sock.family == socket.AF_INET else 6
        for frame, stamp in kernel_time.sent(sock, RECV_SIZE):
            self._on_icmp_sent(kernel_time.ip_payload(frame, version), stamp, version)
        while (got := kernel_time.receive(sock, RECV_SIZE)) is not None:
            data, src, stamp = got
            if version == 4:
                data = packets.strip_ipv4(data)
                ids = packets.echo_ids(data, packets.ICMP_ECHO_REPLY)
            else:
                if data[:1] == bytes([packets.ND_NEIGHBOR_ADVERT]):
                    self._on_neighbor_advert(data, sock, stamp)
                    continue
                ids = packets.echo_ids(data, packets.ICMP6_ECHO_REPLY)
            probe = self._pings.get(ids[0]) if ids else None
            if ids is None or probe is None or probe.done or ids[1] not in probe.sent_at:
                continue
            if not isinstance(src, tuple) or ipaddress.ip_address(str(src[0]).split("%")[0]) != probe.address:
                continue
            probe.result.rtts_ms.append(_rtt_ms(probe.sent_at.pop(ids[1]), stamp))
            if probe.result.received == probe.count:
                self._finish_ping(probe)

    def _on_icmp_sent(self, icmp: bytes | None, stamp: int, version: int) -> None:
        """A request's kernel send stamp replaces the time taken before sendto."""
        if icmp is None:
            return
        if version == 6 and icmp[:1] == bytes([packets.ND_NEIGHBOR_SOLICIT]) and len(icmp) >= 24:
            target = ipaddress.IPv6Address(icmp[8:24])
            for (_nic, tgt), probes in self._ndps.items():
                for ndp in probes if tgt == target else ():
                    ndp.last_sent_ns = stamp
            return
        ids = packets.echo_ids(icmp, packets.ICMP_ECHO if version == 4 else packets.ICMP6_ECHO)
        probe = self._pings.get(ids[0]) if ids else None
        if ids is not None and probe is not None and ids[1] in probe.sent_at:
            probe.sent_at[ids[1]] = stamp

    # -- ARP --------------------------------------------------------------------------------------------
    def arp(self, nic: str, nic_mac: str, source: str, target: str, *, start: float | None = None) -> ArpResult:
        """Who has ``target`` on ``nic``: every MAC that answers (more than one means an address conflict)."""
        tgt = ipaddress.IPv4Address(target)
        src = ipaddress.IPv4Address(source)
        frame = packets.arp_request(packets.mac_bytes(nic_mac), src, tgt)
        probe = _Arp(nic, tgt, ArpResult(str(src)), frame, self._arp_socket(nic))
        self._arps.setdefault((nic, tgt), []).append(probe)
        self._all.append(probe)
        begin = time.monotonic() if start is None else start
        self.reactor.call_at(begin, lambda: self._send_arp(probe))
        self.reactor.call_at(begin + self.ARP_GIVE_UP, functools.partial(_expire, probe))
        return probe.result

    def _send_arp(self, probe: _Arp) -> None:
        if probe.done or probe.first_reply is not None:
            return
        with contextlib.suppress(OSError):
            probe.last_sent_ns = kernel_time.now_ns()
            probe.sock.send(probe.frame)
        probe.sent += 1
        if probe.sent < self.ARP_COUNT:
            self.reactor.call_at(time.monotonic() + self.ARP_INTERVAL, lambda: self._send_arp(probe))

    def _on_arp(self, sock: socket.socket) -> None:
        nic = self._socket_nic.get(sock)
        for frame, stamp in kernel_time.sent(sock, 2048):
            if len(frame) >= packets.ARP_FRAME_LEN and nic is not None:
                for probe in self._arps.get((nic, ipaddress.IPv4Address(frame[38:42])), []):
                    if probe.frame == frame[: len(probe.frame)]:
                        probe.last_sent_ns = stamp
        while (got := kernel_time.receive(sock, 2048)) is not None:
            data, addr, stamp = got
            reply = packets.arp_reply(data)
            if reply is None or not isinstance(addr, tuple) or addr[2] == PACKET_OUTGOING:
                continue
            sender_mac, sender_ip, target_ip = reply
            for probe in self._arps.get((addr[0], sender_ip), []):
                if probe.done or str(target_ip) != probe.result.source:
                    continue
                if sender_mac not in probe.result.macs:
                    probe.result.macs.append(sender_mac)
                if probe.first_reply is None:
                    probe.result.rtt_ms = _rtt_ms(probe.last_sent_ns, stamp)
                    probe.first_reply = time.monotonic()
                    self.reactor.call_at(probe.first_reply + self.ARP_LINGER, functools.partial(_expire, probe))

    # -- IPv6 neighbour discovery -----------------------------------------------------------------------
    def neighbor(self, nic: str, nic_mac: str, ifindex: int, target: str, *,
                 start: float | None = None) -> NeighborResult:
        """Neighbour solicitation for ``target`` on ``nic``; the result holds the first answering MAC."""
        tgt = ipaddress.IPv6Address(target)
        sock = self._icmp_socket(socket.AF_INET6, nic, False)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        packet, group = packets.neighbor_solicit(packets.mac_bytes(nic_mac), tgt)
        probe = _Ndp(nic, tgt, sock, packet, (str(group), 0, 0, ifindex))
        self._ndps.setdefault((nic, tgt), []).append(probe)
        self._all.append(probe)
        begin = time.monotonic() if start is None else start
        self.reactor.call_at(begin, lambda: self._send_ns(probe))
        self.reactor.call_at(begin + self.ARP_GIVE_UP, functools.partial(_expire, probe))
        return probe.result

    def _send_ns(self, probe: _Ndp) -> None:
        if probe.done:
            return
        with contextlib.suppress(OSError):
            probe.last_sent_ns = kernel_time.now_ns()
            probe.sock.sendto(probe.packet, probe.dest)
        probe.sent += 1
        if probe.sent < self.ARP_COUNT:
            self.reactor.call_at(time.monotonic() + self.ARP_INTERVAL, lambda: self._send_ns(probe))

    def _on_neighbor_advert(self, data: bytes, sock: socket.socket, stamp: int) -> None:
        advert = packets.neighbor_advert(data)
        if advert is None:
            return
        target, mac = advert
        nic = self._socket_nic.get(sock)
        for (probe_nic, tgt), probes in self._ndps.items():
            if tgt != target or (nic is not None and probe_nic != nic):
                continue
            for probe in probes:
                if not probe.done:
                    probe.result.mac, probe.done = mac, True
                    probe.result.rtt_ms = _rtt_ms(probe.last_sent_ns, stamp)

    # -- running ----------------------------------------------------------------------------------------
    def run(self, deadline: float) -> None:
        """Drive every scheduled probe until all are done or the monotonic ``deadline`` passes."""
        try:
            self.reactor.run(lambda: all(p.done for p in self._all), deadline)
        finally:
            self.close()
