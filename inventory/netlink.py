"""Links, addresses and routes of the host: from the kernel over RTNETLINK, or from a fixture's recording.

The kernel is asked with three dump requests over a plain ``AF_NETLINK`` socket (stdlib ``socket`` and
``struct``), not through pyroute2: importing pyroute2 alone costs ~120 ms and ~25 MiB, more than the whole
inventory may take. Only the handful of attributes the inventory needs are decoded.

The snapshot is plain JSON, the same shape ``agent record-host`` writes to ``.recorded/netlink.json`` and
:class:`common.host.Host` replays, so collectors never know which one they got::

    {"links": [{"index": 2, "name": "eth0", "flags": 69699, "mtu": 1500, "address": "52:54:00:12:34:56",
                "kind": null, "master": null}],
     "addresses": [{"index": 2, "family": 2, "address": "192.0.2.2", "prefixlen": 24, "scope": 0}],
     "routes": [{"family": 2, "table": 254, "protocol": 4, "type": 1, "dst": "192.0.2.0", "dst_len": 24,
                 "gateway": null, "oif": 2, "priority": null, "multipath": []}]}

``kind`` is the rtnetlink link kind (``bond``, ``vlan``, ``bridge``, ``veth``, ...; null for plain devices),
``flags`` the ``IFF_*`` bits, ``scope`` the address scope (253 = link), ``multipath`` a list of
``{"oif", "gateway"}`` hops.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

from common.errors import HostAccessError
from common.host import Host

Snapshot = dict[str, list[dict[str, Any]]]

_NLMSG = struct.Struct("=IHHII")
_RTA = struct.Struct("=HH")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTNH = struct.Struct("=HBBi")

_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_RTM_NEWLINK, _RTM_GETLINK = 16, 18
_RTM_NEWADDR, _RTM_GETADDR = 20, 22
_RTM_NEWROUTE, _RTM_GETROUTE = 24, 26
_RTM_F_CLONED = 0x200

_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_MASTER, _IFLA_LINKINFO = 1, 3, 4, 10, 18
_IFLA_INFO_KIND = 1
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PRIORITY, _RTA_MULTIPATH, _RTA_TABLE = 1, 4, 5, 6, 9, 15


def snapshot(host: Host) -> Snapshot:
    """The host's links, addresses and routes: the recording of a fixture tree, else the kernel's."""
    if host.recorded_netlink is not None:
        rec = host.recorded_netlink
        return {k: list(rec.get(k) or []) for k in ("links", "addresses", "routes")}
    if not host.is_live:
        # A tree without a recording: there is no netlink to ask, and this machine's would be wrong.
        return {"links": [], "addresses": [], "routes": []}
    try:
        return dump()
    except OSError as exc:
        raise HostAccessError(f"netlink dump failed: {exc}") from exc


def dump() -> Snapshot:
    """Ask this process's network namespace for its links, addresses and routes (both families)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        links = [_link(body) for body in _request(sock, _RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0), _RTM_NEWLINK)]
        addresses = [
            a
            for body in _request(sock, _RTM_GETADDR, _IFADDR.pack(0, 0, 0, 0, 0), _RTM_NEWADDR)
            if (a := _address(body)) is not None
        ]
        routes: list[dict[str, Any]] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            req = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
            routes.extend(
                r for body in _request(sock, _RTM_GETROUTE, req, _RTM_NEWROUTE) if (r := _route(body)) is not None
            )
    return {"links": links, "addresses": addresses, "routes": routes}


def link_by_name(name: str) -> dict[str, Any]:
    """The link called ``name``, asked of the kernel by name (RTM_GETLINK with IFLA_IFNAME, as Go's
    netlink.LinkByName), so a bad name gets the kernel's own answer: OSError ENODEV when there is none, ERANGE
    for a name longer than IFNAMSIZ allows. Cheap: no dump, no pyroute2."""
    raw = name.encode("utf-8", "surrogateescape") + b"\0"
    attr = _RTA.pack(_RTA.size + len(raw), _IFLA_IFNAME) + raw
    attr += b"\0" * (-len(attr) % 4)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        bodies = _request(sock, _RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0) + attr, _RTM_NEWLINK, dump=False)
    if not bodies:
        raise OSError(19, os.strerror(19))
    return _link(bodies[0])


def _request(sock: socket.socket, msg_type: int, payload: bytes, reply_type: int, *,
             dump: bool = True) -> list[bytes]:
    seq = int.from_bytes(os.urandom(3), "little") + 1
    flags = _NLM_F_REQUEST | (_NLM_F_DUMP if dump else 0)
    sock.send(_NLMSG.pack(_NLMSG.size + len(payload), msg_type, flags, seq, 0) + payload)
    bodies: list[bytes] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, mtype, _flags, mseq, _pid = _NLMSG.unpack_from(data, offset)
            if length < _NLMSG.size:
                raise OSError("malformed netlink message")
            body = data[offset + _NLMSG.size : offset + length]
            offset += (length + 3) & ~3
            if mseq != seq:
                continue
            if mtype == _NLMSG_DONE:
                return bodies
            if mtype == _NLMSG_ERROR:
                errno = -struct.unpack_from("=i", body)[0]
                if errno:
                    raise OSError(errno, os.strerror(errno))
                return bodies
            if mtype == reply_type:
                bodies.append(body)
                if not dump:  # one answer, no NLMSG_DONE after it
                    return bodies


def _attrs(data: bytes, offset: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + _RTA.size <= len(data):
        length, atype = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            break
        out.setdefault(atype & 0x3FFF, data[offset + _RTA.size : offset + length])
        offset += (length + 3) & ~3
    return out


def _mac(raw: bytes | None) -> str | None:
    if not raw or not any(raw):
        return None
    return ":".join(f"{b:02x}" for b in raw)


def _ip(family: int, raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return socket.inet_ntop(family, raw)


def _u32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else int(struct.unpack_from("=I", raw)[0])


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def _link(body: bytes) -> dict[str, Any]:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = _attrs(body, _IFINFO.size)
    info = _attrs(attrs[_IFLA_LINKINFO], 0) if _IFLA_LINKINFO in attrs else {}
    return {
        "index": index,
        "name": _text(attrs.get(_IFLA_IFNAME)) or "",
        "flags": flags,
        "mtu": _u32(attrs.get(_IFLA_MTU)) or 0,
        "address": _mac(attrs.get(_IFLA_ADDRESS)),
        "kind": _text(info.get(_IFLA_INFO_KIND)),
        "master": _u32(attrs.get(_IFLA_MASTER)),
    }


def _address(body: bytes) -> dict[str, Any] | None:
    family, prefixlen, _flags, scope, index = _IFADDR.unpack_from(body)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    attrs = _attrs(body, _IFADDR.size)
    # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
    raw = attrs.get(_IFA_LOCAL) if family == socket.AF_INET and _IFA_LOCAL in attrs else attrs.get(_IFA_ADDRESS)
    address = _ip(family, raw)
    if address is None:
        return None
    return {"index": index, "family": family, "address": address, "prefixlen": prefixlen, "scope": scope}


def _route(body: bytes) -> dict[str, Any] | None:
    family, dst_len, _src_len, _tos, table, protocol, _scope, rtype, flags = _RTMSG.unpack_from(body)
    if flags & _RTM_F_CLONED:
        return None
    attrs = _attrs(body, _RTMSG.size)
    hops = []
    raw_mp = attrs.get(_RTA_MULTIPATH)
    offset = 0
    while raw_mp is not None and offset + _RTNH.size <= len(raw_mp):
        length, _hflags, _hops, ifindex = _RTNH.unpack_from(raw_mp, offset)
        if length < _RTNH.size:
            break
        hop_attrs = _attrs(raw_mp[offset : offset + length], _RTNH.size)
        hops.append({"oif": ifindex, "gateway": _ip(family, hop_attrs.get(_RTA_GATEWAY))})
        offset += (length + 3) & ~3
    return {
        "family": family,
        "table": _u32(attrs.get(_RTA_TABLE)) or table,
        "protocol": protocol,
        "type": rtype,
        "dst": _ip(family, attrs.get(_RTA_DST)),
        "dst_len": dst_len,
        "gateway": _ip(family, attrs.get(_RTA_GATEWAY)),
        "oif": _u32(attrs.get(_RTA_OIF)),
        "priority": _u32(attrs.get(_RTA_PRIORITY)),
        "multipath": hops,
    }
