"""connectivity-check: can this host reach every other host of the cluster on L2 and L3, with its MTU?

Semantics are the Go agent's (go-agent-behaviour.md 3.1): outgoing NICs are physical, bond or VLAN
interfaces with a non-link-local address; per remote address, L3 is an ICMP echo series (10 requests) with
average RTT and loss, L2 is ARP (IPv4, only from NICs whose subnet holds the address) or neighbour
discovery (IPv6, NICs with IPv6), and an MTU report comes from every outgoing NIC whose MTU is not 1500 (a
plain echo series bound to the NIC, then one with DF set and a payload that fills the MTU). A MAC that
answers but is none of the remote host's NIC MACs is reported with ``successful: false``: that is how the
service spots address conflicts. Results are sorted as the Go agent sorts them.

Unlike the Go agent, every probe runs in this process on raw sockets (steps.lib.net_probes), all concurrently
under the step's deadline. ``AGENT_VIRTUAL_NICS=1`` in the environment also makes virtual NICs (veth...)
outgoing NICs: test hosts in network namespaces have nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.errors import InvalidStepArguments, StepError
from common.host import Host
from steps.base import Step, StepContext, StepResult, expect_args, get_field, is_uuid, json_arg

if TYPE_CHECKING:
    from steps.lib.net_probes import PingResult, Prober

STEP = "connectivity-check"
DEFAULT_MTU = 1500
IPV4_HEADERS, IPV6_HEADERS = 28, 48
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
PING_COUNT, PING_INTERVAL, PING_WAIT = 10, 0.1, 3.0
MTU_PING_COUNT, MTU_PING_WAIT = 3, 1.0


@dataclass(frozen=True)
class RemoteNic:
    name: str
    mac: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class RemoteHost:
    host_id: str
    nics: tuple[RemoteNic, ...]

    @property
    def macs(self) -> set[str]:
        return {n.mac.lower() for n in self.nics}


@dataclass
class OutgoingNic:
    name: str
    mac: str
    mtu: int
    ifindex: int
    #: Every address of the NIC, link-local ones included (the MTU check's family test uses them all).
    interfaces: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = field(default_factory=list)

    def usable(self, version: int) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        return [i for i in self.interfaces if i.version == version and not _link_local(i.ip)]


def _link_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(ip in net for net in LINK_LOCAL)


def _valid_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) in (6, 8, 20) and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                            for p in parts)


def parse_params(raw: str) -> list[RemoteHost]:
    value = json_arg(STEP, raw, list)
    hosts = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidStepArguments(f"{STEP}: item {i} must be an object, got {type(item).__name__}")
        host_id = get_field(STEP, item, "host_id", str, required=False, default="")
        if host_id and not is_uuid(host_id):
            raise InvalidStepArguments(f"{STEP}: host_id {host_id!r} in item {i} is not a UUID")
        nics = []
        for j, nic in enumerate(get_field(STEP, item, "nics", list, required=False, default=[])):
            if not isinstance(nic, dict):
                raise InvalidStepArguments(f"{STEP}: nic {j} of host {host_id} must be an object")
            mac = get_field(STEP, nic, "mac", str, required=False, default="")
            if mac and not _valid_mac(mac):
                raise InvalidStepArguments(f"{STEP}: mac {mac!r} of host {host_id} is not a MAC address")
            addresses = get_field(STEP, nic, "ip_addresses", list, required=False, default=[])
            for a in addresses:
                if not isinstance(a, str):
                    raise InvalidStepArguments(f"{STEP}: ip_addresses of host {host_id} must be strings")
                try:
                    ipaddress.ip_address(a.split("/")[0])
                except ValueError:
                    raise InvalidStepArguments(
                        f"{STEP}: {a!r} in ip_addresses of host {host_id} is not an IP address") from None
            nics.append(RemoteNic(get_field(STEP, nic, "name", str, required=False, default=""), mac,
                                  tuple(addresses)))
        hosts.append(RemoteHost(host_id, tuple(nics)))
    return hosts


def outgoing_nics(host: Host, *, any_kind: bool = False, virtual: bool = False) -> list[OutgoingNic]:
    """The NICs probes leave from: physical, bond or VLAN (or, ``any_kind``, every NIC but loopback and
    bridges, as nmap would use), with at least one non-link-local address.

    Interface kinds come from the host's sysfs and /proc (so a recorded tree shows what another machine
    had); addresses from this network namespace, where the probes' sockets live.
    """
    import psutil

    allow_virtual = any_kind or virtual
    addrs = psutil.net_if_addrs()
    found = []
    for name in host.listdir("/sys/class/net"):
        base = f"/sys/class/net/{name}"
        if host.read_attr(f"{base}/type") == "772":  # loopback
            continue
        physical = "/virtual/" not in host.realpath(base)
        bond = host.is_dir(f"{base}/bonding")
        vlan = host.exists(f"/proc/net/vlan/{name}")
        virtual_ok = allow_virtual and not host.is_dir(f"{base}/bridge")
        if not (physical or bond or vlan or virtual_ok):
            continue
        nic = OutgoingNic(name, (host.read_attr(f"{base}/address") or "").lower(),
                          int(host.read_attr(f"{base}/mtu") or DEFAULT_MTU),
                          int(host.read_attr(f"{base}/ifindex") or 0))
        for a in addrs.get(name, []):
            if a.family not in (socket.AF_INET, socket.AF_INET6) or not a.netmask:
                continue
            ip = a.address.split("%")[0]
            try:
                prefix = bin(int(ipaddress.ip_address(a.netmask.split("/")[0]))).count("1")
                nic.interfaces.append(ipaddress.ip_interface(f"{ip}/{prefix}"))
            except ValueError:
                continue
        if nic.usable(4) or nic.usable(6):
            found.append(nic)
    return found


def require_live(host: Host, step: str) -> None:
    """Probes are packets on this machine's network: a recorded host tree cannot answer them."""
    if not host.is_live:
        raise StepError(f"{step} needs the live host's network; {host.root} is a recording",
                        code="host-not-live")


def _l3_entry(address: str, sent: int, received: int, loss: float, rtt: float) -> dict[str, Any]:
    """An l3-connectivity as Go marshals it: zero values are omitted, like ping's failure with no figures."""
    entry: dict[str, Any] = {"remote_ip_address": address}
    if received:
        if rtt:
            entry["average_rtt_ms"] = rtt
        if loss:
            entry["packet_loss_percentage"] = loss
        entry["successful"] = True
    return entry


def _l3_finisher(rep: dict[str, list[dict[str, Any]]], address: str, ping: PingResult) -> Callable[[], None]:
    def finish() -> None:
        rep["l3"].append(_l3_entry(address, ping.sent, ping.received, ping.loss_percent, ping.avg_rtt_ms))

    return finish


def check(remotes: list[RemoteHost], nics: list[OutgoingNic], deadline: float) -> dict[str, Any]:
    from steps.lib.net_probes import Prober

    prober = Prober()
    finishers: list[Callable[[], None]] = []
    reports: dict[str, dict[str, list[dict[str, Any]]]] = {}
    start = time.monotonic()
    for remote in remotes:
        rep = reports.setdefault(remote.host_id, {"l2": [], "l3": [], "mtu": []})
        macs = remote.macs
        for rnic in remote.nics:
            for cidr in rnic.addresses:
                address = cidr.split("/")[0]
                ip = ipaddress.ip_address(address)
                ping = prober.ping(address, count=PING_COUNT, interval=PING_INTERVAL, wait=PING_WAIT, start=start)
                finishers.append(_l3_finisher(rep, address, ping))
                for nic in nics:
                    _schedule_l2(prober, nic, ip, macs, rep, finishers, start)
                    _schedule_mtu(prober, nic, ip, rep, start)
    prober.run(deadline)
    for finish in finishers:
        finish()
    remote_hosts = []
    for host_id in sorted(reports):
        rep = reports[host_id]
        rep["l3"].sort(key=lambda e: e["remote_ip_address"])
        rep["l2"].sort(key=lambda e: e["remote_ip_address"] + e.get("remote_mac", ""))
        rep["mtu"].sort(key=lambda e: e["remote_ip_address"])
        entry: dict[str, Any] = {"l2_connectivity": rep["l2"] or None, "l3_connectivity": rep["l3"] or None,
                                 "mtu_report": rep["mtu"] or None}
        if host_id:
            entry["host_id"] = host_id
        remote_hosts.append(entry)
    return {"remote_hosts": remote_hosts or None}


def _schedule_l2(prober: Prober, nic: OutgoingNic, ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 macs: set[str], rep: dict[str, list[dict[str, Any]]], finishers: list[Callable[[], None]],
                 start: float) -> None:
    if ip.version == 4:
        local = nic.usable(4)
        inside = [i for i in local if ip in i.network]
        if not local or not inside:
            return
        arp = prober.arp(nic.name, nic.mac, str(inside[0].ip), str(ip), start=start)

        def report_arp() -> None:
            for mac in arp.macs:
                rep["l2"].append({"outgoing_ip_address": arp.source, "outgoing_nic": nic.name,
                                  "remote_ip_address": str(ip), "remote_mac": mac,
                                  **({"successful": True} if mac in macs else {})})

        finishers.append(report_arp)
    elif nic.usable(6):
        neighbor = prober.neighbor(nic.name, nic.mac, nic.ifindex, str(ip), start=start)

        def report_nd() -> None:
            mac = neighbor.mac
            if mac is not None:
                rep["l2"].append({"outgoing_nic": nic.name, "remote_ip_address": str(ip), "remote_mac": mac,
                                  **({"successful": True} if mac in macs else {})})

        finishers.append(report_nd)


def _schedule_mtu(prober: Prober, nic: OutgoingNic, ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  rep: dict[str, list[dict[str, Any]]], start: float) -> None:
    """The Go agent's MTU check, including its quirk: a NIC with no address of the remote's family passes."""
    if nic.mtu == DEFAULT_MTU:
        return
    entry: dict[str, Any] = {"outgoing_nic": nic.name, "remote_ip_address": str(ip)}
    if not any(i.version == ip.version for i in nic.interfaces):
        rep["mtu"].append({**entry, "mtu_successful": True})
        return
    size = nic.mtu - (IPV4_HEADERS if ip.version == 4 else IPV6_HEADERS)

    def after_plain(plain: PingResult) -> None:
        if not plain.received:
            return  # unreachable through this NIC at all: no MTU report, as in the Go agent

        def after_big(big: PingResult) -> None:
            rep["mtu"].append({**entry, **({"mtu_successful": True} if big.received else {})})

        prober.ping(str(ip), count=MTU_PING_COUNT, interval=PING_INTERVAL, wait=MTU_PING_WAIT, size=size,
                    nic=nic.name, dont_fragment=True, on_done=after_big)

    prober.ping(str(ip), count=MTU_PING_COUNT, interval=PING_INTERVAL, wait=MTU_PING_WAIT, nic=nic.name,
                start=start, on_done=after_plain)


def dry_run_report(remotes: list[RemoteHost]) -> dict[str, Any]:
    """The Go agent's dry-run checkers: every address reachable on L2 (with its NIC's MAC) and L3."""
    remote_hosts = []
    for remote in sorted(remotes, key=lambda r: r.host_id):
        l2: list[dict[str, Any]] = []
        l3: list[dict[str, Any]] = []
        for nic in remote.nics:
            for cidr in nic.addresses:
                address = cidr.split("/")[0]
                l2.append({"remote_ip_address": address, "remote_mac": nic.mac.lower(), "successful": True})
                l3.append({"remote_ip_address": address, "successful": True})
        l2.sort(key=lambda e: e["remote_ip_address"] + e["remote_mac"])
        l3.sort(key=lambda e: e["remote_ip_address"])
        remote_hosts.append({"host_id": remote.host_id, "l2_connectivity": l2 or None,
                             "l3_connectivity": l3 or None, "mtu_report": None})
    return {"remote_hosts": remote_hosts or None}


class ConnectivityCheckStep(Step[list[RemoteHost]]):
    step_type = "connectivity-check"
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> list[RemoteHost]:
        expect_args(STEP, args, 1)
        return parse_params(args[0])

    def run(self, params: list[RemoteHost], ctx: StepContext) -> StepResult:
        if ctx.config.dry_run:
            return StepResult(dry_run_report(params))
        require_live(ctx.host, STEP)
        from steps.lib.net_probes import raw_sockets

        nics = outgoing_nics(ctx.host, virtual=ctx.config.virtual_nics)
        ctx.log.debug("connectivity-check: outgoing NICs %s", [n.name for n in nics])
        with raw_sockets(STEP):
            return StepResult(check(params, nics, time.monotonic() + max(0.0, ctx.remaining() - 1.0)))
