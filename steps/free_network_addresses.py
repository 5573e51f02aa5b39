"""free-network-addresses: which addresses of the host's subnets nobody answers ARP for (VIP candidates).

Semantics of the Go agent's ``nmap -sn -PR`` scan (go-agent-behaviour.md 3): every CIDR must be written in
its canonical form; an address counts as used when something answers ARP for it (the host's own addresses
included, as nmap reports them up), every other address of the network, network and broadcast addresses
included, is free; at most 8000 free addresses are reported in all. The service only sends /22 or longer
prefixes, and this step refuses shorter ones instead of sweeping huge ranges: the Go agent's scans of big
subnets were a user complaint. The sweep is in-process (steps.lib.arp_sweep), from the NIC whose
subnet holds the CIDR.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any

from common.errors import InvalidStepArguments
from common.host import Host
from steps.base import Step, StepContext, StepResult, expect_args, json_arg
from steps.connectivity_check import require_live

STEP = "free-network-addresses"
ADDRESS_LIMIT = 8000
MIN_PREFIX = 22


@dataclass(frozen=True)
class LocalNic:
    name: str
    mac: str
    interface: ipaddress.IPv4Interface


def parse_networks(raw: str) -> list[ipaddress.IPv4Network]:
    value = json_arg(STEP, raw, list)
    networks = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidStepArguments(f"{STEP}: every network must be a string, got {item!r}")
        try:
            net = ipaddress.IPv4Network(item, strict=False)
        except ValueError:
            raise InvalidStepArguments(f"{STEP}: {item!r} is not an IPv4 CIDR") from None
        if str(net) != item:
            raise InvalidStepArguments(f"{STEP}: {item!r} is not a canonical CIDR; use {net}")
        if net.prefixlen < MIN_PREFIX:
            raise InvalidStepArguments(
                f"{STEP}: {item} has {net.num_addresses} addresses; networks shorter than /{MIN_PREFIX} "
                f"are refused", hint=f"ask for /{MIN_PREFIX} or longer networks")
        networks.append(net)
    return networks


def local_nics(host: Host) -> list[LocalNic]:
    import psutil

    found = []
    for name, addrs in psutil.net_if_addrs().items():
        mac = (host.read_attr(f"/sys/class/net/{name}/address") or "").lower()
        if not mac or host.read_attr(f"/sys/class/net/{name}/type") == "772":
            continue
        for a in addrs:
            if a.family == socket.AF_INET and a.netmask:
                found.append(LocalNic(name, mac, ipaddress.IPv4Interface(f"{a.address}/{a.netmask}")))
    return found


def scan(networks: list[ipaddress.IPv4Network], nics: list[LocalNic], deadline: float,
         log: Any = None) -> list[dict[str, Any]]:
    from steps.lib.arp_sweep import arp_sweep

    results: list[dict[str, Any]] = []
    budget = ADDRESS_LIMIT
    for net in networks:
        if budget <= 0:
            break
        nic = next((n for n in nics if n.interface.network.overlaps(net)), None)
        if nic is None:
            if log is not None:
                log.warning("%s: no NIC of this host is in %s; it cannot be ARP-scanned", STEP, net)
            continue
        own = {str(n.interface.ip) for n in nics}
        targets = [str(a) for a in net if str(a) not in own]
        alive = arp_sweep(nic.name, nic.mac, str(nic.interface.ip), targets, deadline)
        free = [a for a in targets if a not in alive][:budget]
        budget -= len(free)
        results.append({"network": str(net), "free_addresses": free})
    return results


class FreeNetworkAddressesStep(Step[list[ipaddress.IPv4Network]]):
    step_type = "free-network-addresses"
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> list[ipaddress.IPv4Network]:
        expect_args(STEP, args, 1)
        return parse_networks(args[0])

    def run(self, params: list[ipaddress.IPv4Network], ctx: StepContext) -> StepResult:
        require_live(ctx.host, STEP)
        deadline = time.monotonic() + max(0.0, ctx.remaining() - 1.0)
        from steps.lib.net_probes import raw_sockets

        with raw_sockets(STEP):
            return StepResult(scan(params, local_nics(ctx.host), deadline, ctx.log))
