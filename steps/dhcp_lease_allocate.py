"""``dhcp-lease-allocate``: lease the cluster's API and ingress VIPs from the machine network's DHCP server.

The service asks for it when a cluster lets DHCP choose its VIPs. As the Go agent does, each VIP gets a
macvlan (private mode) named ``api`` / ``ingress`` on the given NIC, carrying the MAC the service generated
for that VIP, so the DHCP server sees two more clients; the lease the service kept from the last run is asked
for again, so a VIP keeps its address. The exchange itself is in-process (steps.lib.dhcp), not dhclient. The
macvlans are removed at the end, also after a failure.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from common.errors import InvalidStepArguments, StepError
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg
from steps.connectivity_check import require_live

STEP = "dhcp-lease-allocate"
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
#: Per VIP, as the Go agent's ``timeout 28 dhclient``.
PER_VIP_SECONDS = 28.0


@dataclass(frozen=True)
class DhcpRequest:
    interface: str
    macs: dict[str, str]  # "api" / "ingress" -> MAC
    leases: dict[str, str | None]


def parse_request(raw: str) -> DhcpRequest:
    obj = json_arg(STEP, raw, dict)
    interface = get_field(STEP, obj, "interface", str)
    if not IFNAME_RE.match(interface):
        raise InvalidStepArguments(f"{STEP}: interface {interface!r} is not a network interface name")
    macs, leases = {}, {}
    for vip in ("api", "ingress"):
        mac = get_field(STEP, obj, f"{vip}_vip_mac", str)
        if not MAC_RE.match(mac) or int(mac[:2], 16) & 1:
            raise InvalidStepArguments(f"{STEP}: {vip}_vip_mac {mac!r} is not a unicast MAC address")
        macs[vip] = mac.lower()
        leases[vip] = get_field(STEP, obj, f"{vip}_vip_lease", str, required=False)
    if macs["api"] == macs["ingress"]:
        raise InvalidStepArguments(f"{STEP}: api_vip_mac and ingress_vip_mac must differ")
    return DhcpRequest(interface, macs, leases)


@contextlib.contextmanager
def macvlan(ctx: StepContext, name: str, parent: str, mac: str) -> Iterator[None]:
    """The VIP's own link, there only for the exchange (``ip`` through the host seam, never a shell)."""
    run = ctx.host.run
    if ctx.host.exists(f"/sys/class/net/{name}"):
        if ctx.host.read_attr(f"/sys/class/net/{name}/address") != mac:
            raise StepError(f"{STEP}: the host already has an interface named {name}", code="macvlan-failed")
        run(["ip", "link", "del", name], timeout=10)  # ours, left over by an interrupted run
    added = run(["ip", "link", "add", name, "link", parent, "address", mac, "type", "macvlan", "mode", "private"],
                timeout=10)
    if not added.ok:
        raise StepError(f"{STEP}: cannot create the {name} macvlan on {parent}: {added.stderr.strip()}",
                        code="macvlan-failed")
    try:
        up = run(["ip", "link", "set", name, "up"], timeout=10)
        if not up.ok:
            raise StepError(f"{STEP}: cannot bring {name} up: {up.stderr.strip()}", code="macvlan-failed")
        yield
    finally:
        run(["ip", "link", "del", name], timeout=10)


class DhcpLeaseAllocateStep(Step[DhcpRequest]):
    step_type = STEP
    default_timeout = 2 * PER_VIP_SECONDS + 10

    def parse_args(self, args: list[str]) -> DhcpRequest:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: DhcpRequest, ctx: StepContext) -> StepResult:
        from steps.lib import dhcp
        from steps.lib.net_probes import raw_sockets

        require_live(ctx.host, STEP)
        if not ctx.host.exists(f"/sys/class/net/{params.interface}"):
            raise StepError(f"{STEP}: no network interface {params.interface}", code="no-such-interface")
        output: dict[str, Any] = {}
        for vip in ("api", "ingress"):
            mac = params.macs[vip]
            with macvlan(ctx, vip, params.interface, mac), raw_sockets(STEP):
                deadline = time.monotonic() + min(PER_VIP_SECONDS, max(1.0, ctx.remaining() - 1.0))
                lease = dhcp.acquire(vip, mac, hostname=f"{mac.replace(':', '-')}-{vip}",
                                     previous=dhcp.previous_address(params.leases[vip]), deadline=deadline)
            output[f"{vip}_vip_address"] = lease.address
            output[f"{vip}_vip_lease"] = lease.to_text(vip)
        return StepResult(output)
