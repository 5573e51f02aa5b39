"""verify-vips: are the cluster's API and ingress VIPs still free?

As the Go agent's ``nmap -sn -n <vip>`` (go-agent-behaviour.md 3): a VIP that something answers for is
``failed`` (taken), one nobody answers for ``succeeded``. On a local subnet the question is ARP (IPv4) or
neighbour discovery (IPv6), like nmap's host discovery there; elsewhere an ICMP echo. All VIPs are probed
at once, in-process (steps.net_probes). Dry-run: every VIP succeeds.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from agent.errors import InvalidStepArguments
from steps.base import Step, StepContext, StepResult, expect_args, json_arg
from steps.connectivity_check import outgoing_nics, require_live

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


class VerifyVipsStep(Step[list[tuple[str, str]]]):
    step_type = "verify-vips"
    default_timeout = 60.0

    def parse_args(self, args: list[str]) -> list[tuple[str, str]]:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: list[tuple[str, str]], ctx: StepContext) -> StepResult:
        if ctx.config.dry_run:
            return StepResult([{"verification": "succeeded", "vip": v, "vip_type": t} for v, t in params])
        from steps.net_probes import Prober

        require_live(ctx.host, STEP)
        nics = outgoing_nics(ctx.host, any_kind=True)
        prober = Prober()
        answered: list[Callable[[], bool]] = []
        for vip, _ in params:
            ip = ipaddress.ip_address(vip)
            local = [(n, i) for n in nics for i in n.usable(ip.version) if ip in i.network]
            if local and ip.version == 4:
                nic, iface = local[0]
                arp = prober.arp(nic.name, nic.mac, str(iface.ip), vip)
                answered.append(lambda a=arp: bool(a.macs))  # type: ignore[misc]
            elif local:
                nic = local[0][0]
                get_mac = prober.neighbor(nic.name, nic.mac, nic.ifindex, vip)
                answered.append(lambda g=get_mac: g() is not None)  # type: ignore[misc]
            else:
                ping = prober.ping(vip, count=3, interval=0.2, wait=2.0)
                answered.append(lambda p=ping: p.received > 0)  # type: ignore[misc]
        prober.run(time.monotonic() + max(0.0, ctx.remaining() - 1.0))
        out: list[dict[str, Any]] = [
            {"verification": "failed" if up() else "succeeded", "vip": vip, "vip_type": vip_type}
            for (vip, vip_type), up in zip(params, answered, strict=True)]
        return StepResult(out)
