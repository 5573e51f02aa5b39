"""Every hand-written packet codec checked against scapy as the oracle, both ways, on generated packets.

The probes build and read ICMP, ARP, neighbour discovery, DHCP and DNS by hand (one ``struct.pack`` each, see
steps/lib/packets.py for why). Here scapy dissects what we build and we read what scapy builds, for packets
hypothesis makes up: identifiers, payloads, MACs, addresses, names in mixed case, options in any order. The
examples are bounded and derandomized (``CODEC_EXAMPLES``, default 60 per property) so CI stays fast.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR, dns_compress
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptSrcLLAddr,
)
from scapy.layers.l2 import ARP, Ether
from scapy.utils6 import in6_getnsma

from steps.domain_resolution import QTYPE_A, QTYPE_AAAA, QTYPE_CNAME, decode_answer, encode_query
from steps.lib import dhcp
from steps.lib.packets import (
    ICMP6_ECHO_REPLY,
    ICMP_ECHO_REPLY,
    arp_reply,
    arp_request,
    checksum,
    echo_ids,
    echo_request,
    mac_bytes,
    mac_text,
    neighbor_advert,
    neighbor_solicit,
    strip_ipv4,
)

EXAMPLES = int(os.environ.get("CODEC_EXAMPLES", "60"))
ORACLE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])

u16 = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=64)
macs = st.binary(min_size=6, max_size=6).map(lambda b: mac_text(bytes([b[0] & 0xFE]) + b[1:]))  # unicast
ipv4s = st.integers(1, 2**32 - 2).map(ipaddress.IPv4Address)
ipv6s = st.integers(1, 2**128 - 1).map(ipaddress.IPv6Address)
labels = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20) \
    .filter(lambda s: not s.startswith("-") and not s.endswith("-"))
names = st.lists(labels, min_size=1, max_size=4).map(lambda parts: ".".join(parts) + ".")


# -- ICMP echo ------------------------------------------------------------------------------------------------
@ORACLE
@given(ident=u16, seq=u16, payload=payloads)
def test_icmp_echo_we_build_is_what_scapy_builds(ident: int, seq: int, payload: bytes) -> None:
    ours = echo_request(4, ident, seq, payload)
    assert ours == bytes(ICMP(type=8, id=ident, seq=seq) / payload)  # scapy computes the checksum itself
    assert checksum(ours) == 0
    six = echo_request(6, ident, seq, payload)
    theirs = bytes(ICMPv6EchoRequest(id=ident, seq=seq, data=payload))
    assert six[:2] + six[4:] == theirs[:2] + theirs[4:]  # the kernel fills ICMPv6's checksum (pseudo-header)


@ORACLE
@given(ident=u16, seq=u16, payload=payloads, options=st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4]))
def test_icmp_echo_replies_scapy_builds_are_read(ident: int, seq: int, payload: bytes, options: bytes) -> None:
    packet = bytes(IP(src="192.0.2.1", dst="192.0.2.2", options=options) / ICMP(type=0, id=ident, seq=seq) / payload)
    icmp = strip_ipv4(packet)
    assert echo_ids(icmp, ICMP_ECHO_REPLY) == (ident, seq)
    assert echo_ids(bytes(ICMPv6EchoReply(id=ident, seq=seq, data=payload)), ICMP6_ECHO_REPLY) == (ident, seq)
    assert echo_ids(icmp, ICMP6_ECHO_REPLY) is None


# -- ARP ------------------------------------------------------------------------------------------------------
@ORACLE
@given(mac=macs, source=ipv4s, target=ipv4s)
def test_arp_request_we_build_is_what_scapy_reads(mac: str, source: ipaddress.IPv4Address,
                                                  target: ipaddress.IPv4Address) -> None:
    frame = Ether(arp_request(mac_bytes(mac), source, target))
    assert (frame.dst, frame.src, frame.type) == ("ff:ff:ff:ff:ff:ff", mac, 0x0806)
    arp = frame[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst, arp.hwdst) == (1, mac, str(source), str(target),
                                                                   "00:00:00:00:00:00")
    assert bytes(frame) == bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / ARP(
        op=1, hwsrc=mac, psrc=str(source), pdst=str(target), hwdst="00:00:00:00:00:00"))


@ORACLE
@given(mac=macs, other=macs, sender=ipv4s, target=ipv4s, padding=st.binary(max_size=18))
def test_arp_replies_scapy_builds_are_read(mac: str, other: str, sender: ipaddress.IPv4Address,
                                           target: ipaddress.IPv4Address, padding: bytes) -> None:
    reply = bytes(Ether(dst=other, src=mac) / ARP(op=2, hwsrc=mac, psrc=str(sender), hwdst=other,
                                                  pdst=str(target))) + padding  # switches pad to 60 bytes
    assert arp_reply(reply) == (mac, sender, target)
    request = bytes(Ether(dst=other, src=mac) / ARP(op=1, hwsrc=mac, psrc=str(sender), pdst=str(target)))
    assert arp_reply(request) is None


# -- IPv6 neighbour discovery ---------------------------------------------------------------------------------
@ORACLE
@given(mac=macs, target=ipv6s)
def test_neighbor_solicitation_we_build_is_what_scapy_reads(mac: str, target: ipaddress.IPv6Address) -> None:
    packet, group = neighbor_solicit(mac_bytes(mac), target)
    ns = ICMPv6ND_NS(packet)
    assert (ns.type, ns.code, ns.tgt) == (135, 0, str(target))
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == mac
    assert group.packed == in6_getnsma(socket.inet_pton(socket.AF_INET6, str(target)))


@ORACLE
@given(mac=macs, target=ipv6s, mtu_first=st.booleans(), router=st.booleans())
def test_neighbor_adverts_scapy_builds_are_read(mac: str, target: ipaddress.IPv6Address, mtu_first: bool,
                                                router: bool) -> None:
    advert = ICMPv6ND_NA(tgt=str(target), R=int(router), S=1, O=1)
    if mtu_first:  # another option before the link-layer address must be skipped by its length
        advert = advert / ICMPv6NDOptMTU(mtu=1500)
    assert neighbor_advert(bytes(advert / ICMPv6NDOptDstLLAddr(lladdr=mac))) == (target, mac)
    assert neighbor_advert(bytes(advert)) is None  # no target link-layer address: nothing to report


# -- DHCP -----------------------------------------------------------------------------------------------------
@ORACLE
@given(mac=macs, xid=st.integers(0, 2**32 - 1), kind=st.sampled_from([1, 3]), hostname=labels,
       requested=st.none() | ipv4s, server=st.none() | ipv4s)
def test_dhcp_messages_we_build_are_what_scapy_reads(mac: str, xid: int, kind: int, hostname: str,
                                                     requested: ipaddress.IPv4Address | None,
                                                     server: ipaddress.IPv4Address | None) -> None:
    raw = dhcp._message(mac_bytes(mac), xid, kind, hostname, str(requested) if requested else None,
                        str(server) if server else None)
    frame = Ether(raw)
    assert (frame.dst, frame.src) == ("ff:ff:ff:ff:ff:ff", mac)
    ip = frame[IP]
    assert (ip.src, ip.dst, ip.proto) == ("0.0.0.0", "255.255.255.255", 17)
    assert checksum(raw[14:34]) == 0  # the IPv4 header checksum verifies
    assert (frame[UDP].sport, frame[UDP].dport, frame[UDP].len) == (68, 67, len(raw) - 34)
    bootp = frame[BOOTP]
    assert (bootp.op, bootp.xid, bootp.chaddr[:6], bootp.flags) == (1, xid, mac_bytes(mac), 0x8000)
    options = {o[0]: o[1:] for o in frame[DHCP].options if isinstance(o, tuple)}
    assert options["message-type"] == (kind,)
    assert options["hostname"] == (hostname.encode(),)
    assert options["client_id"] == (b"\x01" + mac_bytes(mac),)
    assert options.get("requested_addr") == ((str(requested),) if requested else None)
    assert options.get("server_id") == ((str(server),) if server else None)
    assert "end" in frame[DHCP].options


@ORACLE
@given(mac=macs, xid=st.integers(0, 2**32 - 1), kind=st.sampled_from([2, 5, 6]), offered=ipv4s, server=ipv4s,
       lease=st.integers(1, 2**31), pads=st.integers(0, 3), router=st.booleans())
def test_dhcp_answers_scapy_builds_are_read(mac: str, xid: int, kind: int, offered: ipaddress.IPv4Address,
                                            server: ipaddress.IPv4Address, lease: int, pads: int,
                                            router: bool) -> None:
    options: list[object] = [("message-type", kind), ("server_id", str(server)), *(["pad"] * pads),
                             ("lease_time", lease)]
    if router:
        options.append(("router", "192.0.2.1"))
    answer = (Ether(src="02:00:00:00:00:01", dst=mac) / IP(src=str(server), dst=str(offered))
              / UDP(sport=67, dport=68) / BOOTP(op=2, xid=xid, yiaddr=str(offered), chaddr=mac_bytes(mac))
              / DHCP(options=[*options, "end"]))
    parsed = dhcp._parse(bytes(answer), mac_bytes(mac), xid)
    assert parsed is not None
    got_kind, got_address, got_options = parsed
    assert (got_kind, got_address) == (kind, str(offered))
    assert got_options[54] == server.packed and got_options[51] == struct.pack("!I", lease)
    assert (3 in got_options) == router
    assert dhcp._parse(bytes(answer), mac_bytes(mac), xid ^ 1) is None  # another exchange's answer


# -- DNS ------------------------------------------------------------------------------------------------------
@ORACLE
@given(qid=u16, name=names, qtype=st.sampled_from([QTYPE_A, QTYPE_AAAA]))
def test_dns_queries_we_build_are_what_scapy_reads(qid: int, name: str, qtype: int) -> None:
    query = DNS(encode_query(qid, name, qtype))
    assert (query.id, query.qr, query.rd, query.qdcount, query.ancount) == (qid, 0, 1, 1, 0)
    assert (query.qd[0].qname, query.qd[0].qtype, query.qd[0].qclass) == (name.encode(), qtype, 1)
    assert encode_query(qid, name, qtype) == bytes(DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype)))


@ORACLE
@given(qid=u16, name=names, alias=st.none() | names, v4=st.lists(ipv4s, max_size=3),
       v6=st.lists(ipv6s, max_size=2), compress=st.booleans(), rcode=st.sampled_from([0, 3]))
def test_dns_answers_scapy_builds_are_read(qid: int, name: str, alias: str | None,
                                           v4: list[ipaddress.IPv4Address], v6: list[ipaddress.IPv6Address],
                                           compress: bool, rcode: int) -> None:
    owner = alias or name
    records = [DNSRR(rrname=name, type="CNAME", rdata=alias)] if alias else []
    records += [DNSRR(rrname=owner, type="A", rdata=str(a)) for a in v4]
    records += [DNSRR(rrname=owner, type="AAAA", rdata=str(a)) for a in v6]
    message = DNS(id=qid, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=name), an=records)
    raw = bytes(dns_compress(message)) if compress and records else bytes(message)  # type: ignore[no-untyped-call]
    got_id, answer = decode_answer(raw)
    expected = ([(name, QTYPE_CNAME, alias)] if alias else []) + [(owner, QTYPE_A, str(a)) for a in v4] \
        + [(owner, QTYPE_AAAA, str(a)) for a in v6]
    assert (got_id, answer.rcode, answer.truncated) == (qid, rcode, False)
    assert answer.records == expected  # names as the answer wrote them, case included
