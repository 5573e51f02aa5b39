"""connectivity-check, free-network-addresses and verify-vips on real kernels: hosts in network namespaces.

Every step runs through the real runner (``agent step --wire``) inside a test host, so what is checked is
the reply the service would get.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reference_service import spec
from tests.support.netns import Host, Network, Nic

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def params_for(hosts: list[Host], ids: dict[str, str], *, ipv6: bool = True) -> list[dict[str, Any]]:
    out = []
    for h in hosts:
        nics = []
        for n in h.nics:
            addrs = [a.split("/")[0] for a in (n.ipv4, n.ipv6 if ipv6 else None) if a]
            nics.append({"name": n.name, "mac": n.mac, "ip_addresses": addrs})
        out.append({"host_id": ids[h.name], "nics": nics})
    return out


def output_of(reply: dict[str, Any], model: str) -> Any:
    assert "exit_code" not in reply, reply
    out = json.loads(reply["output"])
    assert spec.errors(model, out) == []
    return out


@pytest.fixture(scope="module")
def lan() -> Iterator[dict[str, Any]]:
    """prober (jumbo MTU, a second NIC with no address), small-MTU host, jumbo host, a cut host, a lossy host,
    and an impostor that also claims the small-MTU host's IPv4 address."""
    with Network() as net:
        prober = net.add_host(nics=[Nic(mtu=9000), Nic()], ipv6=True)
        prober.ip("addr", "flush", "dev", "eth1", "scope", "global")
        small = net.add_host(ipv6=True)
        jumbo = net.add_host(nics=[Nic(mtu=9000)], ipv6=True)
        cut = net.add_host(ipv6=True)
        lossy = net.add_host()
        impostor = net.add_host()
        impostor.ip("addr", "add", f"{small.ipv4}/24", "dev", "eth0")
        cut.cut()
        lossy.set_loss(30)
        ids = {h.name: str(uuid.uuid4()) for h in net.hosts}
        yield {"net": net, "prober": prober, "small": small, "jumbo": jumbo, "cut": cut, "lossy": lossy,
               "impostor": impostor, "ids": ids}


@pytest.fixture(scope="module")
def report(lan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One connectivity-check from the prober to every other host, by host name."""
    targets = [lan[k] for k in ("small", "jumbo", "cut", "impostor")]
    reply = lan["prober"].step("connectivity-check", [json.dumps(params_for(targets, lan["ids"]))])
    out = output_of(reply, "connectivity-report")
    ids = [r["host_id"] for r in out["remote_hosts"]]
    assert ids == sorted(ids), "remote hosts are sorted by host_id"
    by_id = {v: k for k, v in lan["ids"].items()}
    return {by_id[r["host_id"]]: r for r in out["remote_hosts"]}


def test_reachable_host_l2_l3_and_mtu(lan: dict[str, Any], report: dict[str, dict[str, Any]]) -> None:
    jumbo = lan["jumbo"]
    rep = report[jumbo.name]
    l3 = {e["remote_ip_address"]: e for e in rep["l3_connectivity"]}
    assert set(l3) == {jumbo.ipv4, jumbo.ipv6}
    for entry in l3.values():
        assert entry["successful"] is True
        assert entry["average_rtt_ms"] > 0
        assert "packet_loss_percentage" not in entry  # 0 % is omitted, as Go marshals it
        assert "outgoing_nic" not in entry
    l2 = {(e["remote_ip_address"], e["outgoing_nic"]): e for e in rep["l2_connectivity"]}
    # Only eth0 is an outgoing NIC: eth1 has no address but its link-local one.
    assert set(l2) == {(jumbo.ipv4, "eth0"), (jumbo.ipv6, "eth0")}
    assert all(e["remote_mac"] == jumbo.mac and e["successful"] for e in l2.values())
    assert l2[(jumbo.ipv4, "eth0")]["outgoing_ip_address"] == lan["prober"].ipv4
    # Both ends have MTU 9000: a full-size frame with DF set gets through.
    assert rep["mtu_report"] == [
        {"outgoing_nic": "eth0", "remote_ip_address": jumbo.ipv4, "mtu_successful": True},
        {"outgoing_nic": "eth0", "remote_ip_address": jumbo.ipv6, "mtu_successful": True},
    ]


def test_smaller_mtu_is_reported_unsuccessful(lan: dict[str, Any], report: dict[str, dict[str, Any]]) -> None:
    small = lan["small"]
    rep = report[small.name]
    assert all(e.get("successful") for e in rep["l3_connectivity"])
    # Plain pings pass, 9000-byte frames with DF set are dropped by the 1500-MTU host: mtu_successful false
    # (omitted on the wire, as Go's omitempty does).
    assert rep["mtu_report"] == [
        {"outgoing_nic": "eth0", "remote_ip_address": small.ipv4},
        {"outgoing_nic": "eth0", "remote_ip_address": small.ipv6},
    ]


def test_cut_host_has_failed_l3_and_no_l2(lan: dict[str, Any], report: dict[str, dict[str, Any]]) -> None:
    cut = lan["cut"]
    rep = report[cut.name]
    assert rep["l2_connectivity"] is None
    assert rep["mtu_report"] is None  # the plain ping failed: no MTU verdict, as in the Go agent
    assert rep["l3_connectivity"] == [{"remote_ip_address": cut.ipv4}, {"remote_ip_address": cut.ipv6}]


def test_address_conflict_reports_the_foreign_mac(lan: dict[str, Any], report: dict[str, dict[str, Any]]) -> None:
    small, impostor = lan["small"], lan["impostor"]
    entries = [e for e in report[small.name]["l2_connectivity"] if e["remote_ip_address"] == small.ipv4]
    by_mac = {e["remote_mac"]: e for e in entries}
    assert set(by_mac) == {small.mac, impostor.mac}
    assert by_mac[small.mac]["successful"] is True
    assert "successful" not in by_mac[impostor.mac]
    macs = [e["remote_ip_address"] + e["remote_mac"] for e in report[small.name]["l2_connectivity"]]
    assert macs == sorted(macs), "l2 entries are sorted by remote IP + MAC"


def test_packet_loss_is_measured(lan: dict[str, Any]) -> None:
    # From the 1500-MTU host: no MTU probes, so the lossy host sends exactly the ten echo replies of one
    # series (ARP is not IP and not dropped), and exactly three of every ten are lost.
    lossy = lan["lossy"]
    reply = lan["small"].step("connectivity-check", [json.dumps(params_for([lossy], lan["ids"]))])
    out = output_of(reply, "connectivity-report")
    (l3,) = out["remote_hosts"][0]["l3_connectivity"]
    assert l3["successful"] is True
    assert l3["packet_loss_percentage"] == 30.0
    assert out["remote_hosts"][0]["l2_connectivity"][0]["successful"] is True


def test_without_virtual_nics_only_l3_is_checked(lan: dict[str, Any]) -> None:
    """The real agent's outgoing-NIC rule: veths are neither physical, bond nor VLAN, so no L2 probes."""
    jumbo = lan["jumbo"]
    reply = lan["small"].step("connectivity-check", [json.dumps(params_for([jumbo], lan["ids"]))],
                              env={"AGENT_VIRTUAL_NICS": "0"})
    out = output_of(reply, "connectivity-report")
    remote = out["remote_hosts"][0]
    assert remote["l2_connectivity"] is None
    assert all(e["successful"] for e in remote["l3_connectivity"])


def test_free_addresses_of_a_24(lan: dict[str, Any]) -> None:
    net: Network = lan["net"]
    reply = lan["prober"].step("free-network-addresses", [json.dumps(["10.201.0.0/24"])])
    (entry,) = output_of(reply, "free_networks_addresses")
    assert entry["network"] == "10.201.0.0/24"
    free = set(entry["free_addresses"])
    used = {net.hub_ipv4, *(h.ipv4 for h in net.hosts if h is not lan["cut"])}
    assert not used & free, used & free
    assert lan["cut"].ipv4 in free  # nobody answers for a cut host
    assert {"10.201.0.0", "10.201.0.255", "10.201.0.200"} <= free  # network and broadcast count, as with nmap
    assert len(free) == 256 - len(used)
    assert entry["free_addresses"] == sorted(entry["free_addresses"], key=lambda a: tuple(map(int, a.split("."))))


def test_free_addresses_are_capped_at_8000(lan: dict[str, Any]) -> None:
    host: Host = lan["jumbo"]
    networks = [f"10.202.{4 * i}.0/22" for i in range(9)]
    for i in range(9):
        host.ip("addr", "add", f"10.202.{4 * i}.1/22", "dev", "eth0")
    try:
        reply = host.step("free-network-addresses", [json.dumps(networks)])
    finally:
        for i in range(9):
            host.ip("addr", "del", f"10.202.{4 * i}.1/22", "dev", "eth0")
    out = output_of(reply, "free_networks_addresses")
    assert sum(len(e["free_addresses"]) for e in out) == 8000
    assert [e["network"] for e in out] == networks[: len(out)]


def test_verify_vips(lan: dict[str, Any]) -> None:
    taken, free = lan["jumbo"].ipv4, "10.201.0.222"
    request = [{"vip": taken, "vip_type": "api"}, {"vip": free, "vip_type": "ingress"},
               {"vip": lan["jumbo"].ipv6, "vip_type": "api"}]
    reply = lan["small"].step("verify-vips", [json.dumps(request)])
    out = output_of(reply, "verify_vips_response")
    assert out == [{"verification": "failed", "vip": taken, "vip_type": "api"},
                   {"verification": "succeeded", "vip": free, "vip_type": "ingress"},
                   {"verification": "failed", "vip": lan["jumbo"].ipv6, "vip_type": "api"}]


def test_verify_vips_of_the_hosts_own_addresses_are_taken(lan: dict[str, Any]) -> None:
    """nmap -sn reports the host's own address up (localhost-response); no ARP or NS is answered for it."""
    small = lan["small"]
    request = [{"vip": small.ipv4, "vip_type": "api"}, {"vip": small.ipv6, "vip_type": "ingress"}]
    reply = small.step("verify-vips", [json.dumps(request)])
    assert output_of(reply, "verify_vips_response") == [
        {"verification": "failed", "vip": small.ipv4, "vip_type": "api"},
        {"verification": "failed", "vip": small.ipv6, "vip_type": "ingress"}]
