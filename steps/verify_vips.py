"""verify-vips: are the cluster's API and ingress VIPs still free?

As the Go agent's ``nmap -sn -n <vip>`` (go-agent-behaviour.md 3): a VIP that something answers for is
``failed`` (taken), one nobody answers for ``succeeded``. On a local subnet the question is ARP (IPv4) or
neighbour discovery (IPv6), like nmap's host discovery there; elsewhere an ICMP echo. A VIP that is one of
this host's own addresses is taken without a probe: nmap reports it up ("localhost-response"), while no ARP or
neighbour request is ever answered for an address the asking host holds itself. All VIPs are probed at once,
in-process (steps.lib.net_probes). Dry-run: every VIP succeeds.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.errors import InvalidStepArguments
from steps.base import Step, StepContext, StepResult, expect_args, json_arg
from steps.connectivity_check import OutgoingNic, outgoing_nics, require_live

if TYPE_CHECKING:
    from steps.lib.net_probes import ArpResult, NeighborResult, PingResult

STEP = "verify-vips"
VIP_TYPES = ("api", "ingress")


def parse_request(raw: str) -> list[tuple[str, str]]:
    value = json_arg(STEP, raw, list)
    vips = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidStepArguments(f"{STEP}: every VIP must be an object, got {item!r}")
        vip, vip_type = item.get("vip"), item.get("vip_type")
        try:
            ipaddress.ip_address(vip if isinstance(vip, str) else "")
        except ValueError:
            raise InvalidStepArguments(f"{STEP}: vip {vip!r} is not an IP address") from None
        if vip_type not in VIP_TYPES:
            raise InvalidStepArguments(f"{STEP}: vip_type {vip_type!r} must be one of {', '.join(VIP_TYPES)}")
        vips.append((str(vip), str(vip_type)))
    return vips


def own_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of every interface of this network namespace (loopback, bridges and down links too)."""
    import psutil

    own: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(ValueError):
                    own.add(ipaddress.ip_address(a.address.split("%")[0]))
    return own


def probe(vips: list[tuple[str, str]], nics: list[OutgoingNic], deadline: float,
          own: set[ipaddress.IPv4Address | ipaddress.IPv6Address] | frozenset[Any] = frozenset()) -> list[bool]:
    """For each VIP, whether something answered for it (this host, for its own addresses); all VIPs are
    probed at once."""
    from steps.lib.net_probes import Prober

    prober = Prober()
    answered: list[Callable[[], bool]] = []
    for vip, _ in vips:
        ip = ipaddress.ip_address(vip)
        if ip in own:
            answered.append(lambda: True)
            continue
        local = [(n, i) for n in nics for i in n.usable(ip.version) if ip in i.network]
        if local and ip.version == 4:
            nic, iface = local[0]
            answered.append(_any_mac(prober.arp(nic.name, nic.mac, str(iface.ip), vip)))
        elif local:
            nic = local[0][0]
            answered.append(_mac_seen(prober.neighbor(nic.name, nic.mac, nic.ifindex, vip)))
        else:
            answered.append(_any_reply(prober.ping(vip, count=3, interval=0.2, wait=2.0)))
    prober.run(deadline)
    return [up() for up in answered]


def _mac_seen(neighbor: NeighborResult) -> Callable[[], bool]:
    return lambda: neighbor.mac is not None


def _any_mac(arp: ArpResult) -> Callable[[], bool]:
    return lambda: bool(arp.macs)


def _any_reply(ping: PingResult) -> Callable[[], bool]:
    return lambda: ping.received > 0


class VerifyVipsStep(Step[list[tuple[str, str]]]):
    step_type = "verify-vips"
    default_timeout = 60.0

    def parse_args(self, args: list[str]) -> list[tuple[str, str]]:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: list[tuple[str, str]], ctx: StepContext) -> StepResult:
        if ctx.config.dry_run:
            return StepResult([{"verification": "succeeded", "vip": v, "vip_type": t} for v, t in params])
        from steps.lib.net_probes import raw_sockets

        require_live(ctx.host, STEP)
        nics = outgoing_nics(ctx.host, any_kind=True)
        with raw_sockets(STEP):
            taken = probe(params, nics, time.monotonic() + max(0.0, ctx.remaining() - 1.0), own_addresses())
        out: list[dict[str, Any]] = [
            {"verification": "failed" if up else "succeeded", "vip": vip, "vip_type": vip_type}
            for (vip, vip_type), up in zip(params, taken, strict=True)]
        return StepResult(out)
