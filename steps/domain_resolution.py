"""domain-resolution: A, AAAA and the canonical name of each of the cluster's DNS names.

Mirrors Go's ``net.LookupIP`` plus ``net.LookupCNAME`` as the Go agent uses them (go-agent-behaviour.md 3):
``/etc/hosts`` first, then the nameservers of ``/etc/resolv.conf`` with its search list and ``ndots`` (a
name ending in a dot is only tried as it is; that is how the service tells a wildcard record from a DHCP
search domain); NXDOMAIN is an answer, not an error (empty address lists). ``cnames`` holds what
LookupCNAME returns, the canonical name with a trailing dot (the end of the CNAME chain, or the name itself
when it has no CNAME), and is null when the name does not resolve. The DNS client is a small one of our
own over UDP (A and AAAA asked at once), so no resolver library or subprocess is involved.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from common.errors import InvalidStepArguments
from common.host import Host
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg

STEP = "domain-resolution"
QTYPE_A, QTYPE_CNAME, QTYPE_AAAA = 1, 5, 28
RCODE_NXDOMAIN = 3
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def valid_domain(name: str) -> bool:
    """A DNS name: dot-separated labels of letters, digits and inner hyphens, optionally rooted."""
    body = name[:-1] if name.endswith(".") else name
    if not body or len(body) > 253:
        return False
    return all(_LABEL.match(label) for label in body.split("."))


def parse_request(raw: str) -> list[str]:
    value = json_arg(STEP, raw, dict)
    domains = get_field(STEP, value, "domains", list)
    names = []
    for item in domains:
        if not isinstance(item, dict) or not isinstance(item.get("domain_name"), str):
            raise InvalidStepArguments("Every domain in a domain request must have a domain name field")
        name = item["domain_name"]
        if not valid_domain(name):
            raise InvalidStepArguments(f"{STEP}: {name!r} is not a valid domain name")
        names.append(name)
    return names


@dataclass
class ResolverConf:
    nameservers: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    search: list[str] = field(default_factory=list)
    ndots: int = 1
    timeout: float = 5.0
    attempts: int = 2


def read_resolv_conf(host: Host) -> ResolverConf:
    conf = ResolverConf()
    servers: list[str] = []
    for line in (host.read_text("/etc/resolv.conf") or "").splitlines():
        words = line.split("#")[0].split(";")[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            try:
                servers.append(str(ipaddress.ip_address(words[1].split("%")[0])))
            except ValueError:
                continue
        elif words[0] in ("search", "domain"):
            conf.search = [w.strip(".") for w in words[1:] if w.strip(".")]
        elif words[0] == "options":
            for opt in words[1:]:
                key, _, val = opt.partition(":")
                if key in ("ndots", "timeout", "attempts") and val.isdigit():
                    setattr(conf, key, min(int(val), 15) if key == "ndots" else int(val))
    if servers:
        conf.nameservers = servers
    return conf


def read_hosts(host: Host) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for line in (host.read_text("/etc/hosts") or "").splitlines():
        words = line.split("#")[0].split()
        if len(words) < 2:
            continue
        try:
            addr = str(ipaddress.ip_address(words[0].split("%")[0]))
        except ValueError:
            continue
        for name in words[1:]:
            table.setdefault(name.lower().rstrip("."), []).append(addr)
    return table


def candidates(name: str, conf: ResolverConf) -> list[str]:
    """Go's nameList: the fully qualified names to try, in order."""
    if name.endswith("."):
        return [name]
    with_search = [f"{name}.{s}." for s in conf.search]
    if name.count(".") >= conf.ndots:
        return [f"{name}.", *with_search]
    return [*with_search, f"{name}."]


def encode_query(qid: int, name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split(".") if p)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        pos += 1
        if length == 0:
            break
        labels.append(msg[pos : pos + length].decode("ascii", errors="replace"))
        pos += length
    return ".".join(labels) + ".", end if end is not None else pos


@dataclass
class Answer:
    rcode: int
    #: (owner name, type, data) of every answer record; data is an address or a CNAME target.
    records: list[tuple[str, int, str]] = field(default_factory=list)
    #: The UDP answer did not fit (TC bit): ask again over TCP, as every resolver does.
    truncated: bool = False


def decode_answer(msg: bytes) -> tuple[int, Answer]:
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    answer = Answer(flags & 0x0F, truncated=bool(flags & 0x0200))
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(msg, pos)
        pos += 4
    for _ in range(an):
        owner, pos = _read_name(msg, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[pos : pos + 10])
        pos += 10
        rdata = msg[pos : pos + rdlen]
        if rtype == QTYPE_A and rdlen == 4:
            answer.records.append((owner, rtype, str(ipaddress.IPv4Address(rdata))))
        elif rtype == QTYPE_AAAA and rdlen == 16:
            answer.records.append((owner, rtype, str(ipaddress.IPv6Address(rdata))))
        elif rtype == QTYPE_CNAME:
            target, _ = _read_name(msg, pos)
            answer.records.append((owner, rtype, target))
        pos += rdlen
    return qid, answer


def query(fqdn: str, conf: ResolverConf, deadline: float) -> dict[int, Answer]:
    """Ask for A and AAAA of ``fqdn`` at once, each nameserver in turn; the answers by query type."""
    answers: dict[int, Answer] = {}
    for _attempt in range(conf.attempts):
        for server in conf.nameservers:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError:
                continue
            with sock:
                try:
                    sock.connect((server, 53))
                    ids = {}
                    for qtype in (QTYPE_A, QTYPE_AAAA):
                        if qtype in answers:
                            continue
                        qid = struct.unpack("!H", os.urandom(2))[0]
                        ids[qid] = qtype
                        sock.send(encode_query(qid, fqdn, qtype))
                except OSError:
                    continue
                until = min(deadline, time.monotonic() + conf.timeout)
                while ids and time.monotonic() < until:
                    ready, _, _ = select.select([sock], [], [], until - time.monotonic())
                    if not ready:
                        break
                    try:
                        msg = sock.recv(65535)
                        qid, answer = decode_answer(msg)
                    except (OSError, struct.error, IndexError, ValueError):
                        break
                    if qid in ids:
                        qtype = ids.pop(qid)
                        if answer.truncated:
                            answer = query_tcp(server, fqdn, qtype, until) or answer
                        answers[qtype] = answer
            if QTYPE_A in answers and QTYPE_AAAA in answers:
                return answers
            if time.monotonic() >= deadline:
                return answers
    return answers


def query_tcp(server: str, fqdn: str, qtype: int, deadline: float) -> Answer | None:
    """One question over TCP (two-byte length prefix on each message); None when it cannot be asked."""
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        return None
    qid = struct.unpack("!H", os.urandom(2))[0]
    message = encode_query(qid, fqdn, qtype)
    try:
        with socket.create_connection((server, 53), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(message)) + message)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = sock.recv(65535)
                if not chunk:
                    return None
                data += chunk
        got_id, answer = decode_answer(data[2:])
    except (OSError, struct.error, IndexError, ValueError):
        return None
    return answer if got_id == qid else None


def follow(fqdn: str, answers: dict[int, Answer]) -> tuple[str, list[str], list[str]]:
    """The canonical name (end of the CNAME chain) and the A and AAAA addresses owned by it.

    Names compare without case, as DNS does, but the canonical name keeps the case it was written in (the
    query's, or the CNAME record's): Go's LookupCNAME returns it so, and the service shows it as it is."""
    cname_of: dict[str, str] = {}
    for answer in answers.values():
        for owner, rtype, data in answer.records:
            if rtype == QTYPE_CNAME:
                cname_of[owner.lower()] = data
    canonical = fqdn
    for _ in range(16):
        if canonical.lower() not in cname_of:
            break
        canonical = cname_of[canonical.lower()]
    key = canonical.lower()
    v4 = [d for a in answers.values() for o, t, d in a.records if t == QTYPE_A and o.lower() == key]
    v6 = [d for a in answers.values() for o, t, d in a.records if t == QTYPE_AAAA and o.lower() == key]
    return canonical, v4, v6


def resolve(name: str, conf: ResolverConf, hosts: dict[str, list[str]], deadline: float) -> dict[str, Any]:
    result: dict[str, Any] = {"cnames": None, "domain_name": name, "ipv4_addresses": [], "ipv6_addresses": []}
    local = hosts.get(name.lower().rstrip("."))
    if local:
        result["cnames"] = [name.rstrip(".") + "."]
        result["ipv4_addresses"] = [a for a in local if ":" not in a]
        result["ipv6_addresses"] = [a for a in local if ":" in a]
        return result
    for fqdn in candidates(name, conf):
        answers = query(fqdn, conf, deadline)
        canonical, v4, v6 = follow(fqdn, answers)
        if v4 or v6:
            result.update(cnames=[canonical], ipv4_addresses=v4, ipv6_addresses=v6)
            return result
    return result


class DomainResolutionStep(Step[list[str]]):
    step_type = "domain-resolution"
    default_timeout = 60.0

    def parse_args(self, args: list[str]) -> list[str]:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: list[str], ctx: StepContext) -> StepResult:
        conf = read_resolv_conf(ctx.host)
        hosts = read_hosts(ctx.host)
        deadline = time.monotonic() + max(0.0, ctx.remaining() - 1.0)
        if len(params) <= 1:
            return StepResult({"resolutions": [resolve(name, conf, hosts, deadline) for name in params]})
        # Names are resolved side by side: an unanswering nameserver costs one timeout, not one per name.
        with ThreadPoolExecutor(max_workers=min(16, len(params))) as pool:
            resolutions = list(pool.map(lambda n: resolve(n, conf, hosts, deadline), params))
        return StepResult({"resolutions": resolutions})
