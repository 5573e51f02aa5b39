"""The in-process probes on real kernels, called directly inside a test host's network namespace:
steps.lib.net_probes (ICMP echo, ARP, neighbour discovery), steps.lib.arp_sweep, and the scans of
verify-vips and free-network-addresses built on them. Addresses answered for are found, silent ones are not.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator

import pytest

from steps import free_network_addresses, verify_vips
from steps.connectivity_check import OutgoingNic
from steps.lib.arp_sweep import arp_sweep
from steps.lib.net_probes import Prober
from tests.support.netns import Host, Network, run_in

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

SILENT4 = "10.201.0.249"  # in the test subnet, nobody has it
SILENT6 = "fd42:201::249"


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    with Network(tag="probes") as network:
        network.add_host(ipv6=True)
        network.add_host(ipv6=True)
        yield network


def _nic(host: Host) -> OutgoingNic:
    nic = host.nics[0]
    ifindex = int(host.run(["cat", "/sys/class/net/eth0/ifindex"], check=True).stdout)
    assert nic.ipv4 and nic.ipv6
    return OutgoingNic(nic.name, nic.mac, nic.mtu, ifindex,
                       [ipaddress.IPv4Interface(nic.ipv4), ipaddress.IPv6Interface(nic.ipv6)])


def test_ping_counts_the_replies_of_a_live_host_and_none_of_a_silent_one(net: Network) -> None:
    a, b = net.hosts

    def probe() -> tuple[int, int, int, float]:
        prober = Prober()
        up = prober.ping(b.ipv4, count=3, interval=0.05, wait=1.0)
        up6 = prober.ping(b.ipv6, count=2, interval=0.05, wait=1.0)
        down = prober.ping(SILENT4, count=2, interval=0.05, wait=0.5)
        prober.run(time.monotonic() + 5)
        return up.received, up6.received, down.received, down.loss_percent

    assert run_in(a.name, probe) == (3, 2, 0, 100.0)


def test_arp_and_neighbour_discovery_name_the_answering_mac(net: Network) -> None:
    a, b = net.hosts
    nic = _nic(a)

    def probe() -> tuple[list[str], list[str], str | None, str | None]:
        prober = Prober()
        arp = prober.arp("eth0", a.mac, a.ipv4, b.ipv4)
        silent = prober.arp("eth0", a.mac, a.ipv4, SILENT4)
        nd = prober.neighbor("eth0", a.mac, nic.ifindex, b.ipv6)
        nd_silent = prober.neighbor("eth0", a.mac, nic.ifindex, SILENT6)
        prober.run(time.monotonic() + 5)
        return arp.macs, silent.macs, nd.mac, nd_silent.mac

    assert run_in(a.name, probe) == ([b.mac], [], b.mac, None)


def test_arp_sweep_finds_exactly_the_addresses_that_answer(net: Network) -> None:
    a, b = net.hosts
    targets = [net.hub_ipv4, b.ipv4, SILENT4, "10.201.0.250"]
    got = run_in(a.name, lambda: arp_sweep("eth0", a.mac, a.ipv4, targets, time.monotonic() + 5, settle=0.3))
    assert got == {net.hub_ipv4, b.ipv4}


def test_verify_vips_probes_each_vip_the_way_its_subnet_needs(net: Network) -> None:
    a, b = net.hosts
    nic = _nic(a)
    vips = [(b.ipv4, "api"), (SILENT4, "ingress"), (b.ipv6, "api"), (SILENT6, "ingress"),
            ("198.51.100.7", "api")]  # not local: an ICMP echo through the default route, unanswered
    got = run_in(a.name, lambda: verify_vips.probe(vips, [nic], time.monotonic() + 8))
    assert got == [True, False, True, False, False]


def test_free_addresses_are_every_address_of_the_network_nobody_answers_for(net: Network) -> None:
    a, b = net.hosts
    assert a.nics[0].ipv4
    local = free_network_addresses.LocalNic("eth0", a.mac, ipaddress.IPv4Interface(a.nics[0].ipv4))
    nets = [ipaddress.IPv4Network("10.201.0.0/28"), ipaddress.IPv4Network("192.0.2.0/30")]  # the second: no NIC
    got = run_in(a.name, lambda: free_network_addresses.scan(nets, [local], time.monotonic() + 8))
    used = {net.hub_ipv4, a.ipv4, b.ipv4}
    assert got == [{"network": "10.201.0.0/28",
                    "free_addresses": [str(x) for x in nets[0] if str(x) not in used]}]
