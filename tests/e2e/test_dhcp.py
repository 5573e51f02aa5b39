"""dhcp-lease-allocate against a real DHCP server (dnsmasq) in the hub of a namespace network: the VIPs get
leases under their own MACs, keep their addresses when the previous lease is given back, and the macvlans
are gone afterwards. Only addresses inside the namespaces the harness creates are used."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from reference_service import spec
from steps.dhcp_lease_allocate import parse_request
from steps.lib import dhcp
from tests.support.netns import Network

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
API_MAC, INGRESS_MAC = "00:1a:4a:10:00:01", "00:1a:4a:10:00:02"
POOL = [f"10.201.0.{i}" for i in range(150, 160)]


def dhcp_server(tmp_path: Path) -> list[str]:
    return [f"--dhcp-range={POOL[0]},{POOL[-1]},255.255.255.0,1h", f"--dhcp-leasefile={tmp_path / 'leases'}",
            "--dhcp-authoritative", "--dhcp-option=option:router,10.201.0.1"]


@pytest.mark.netns
@needs_root
def test_vips_are_leased_under_their_own_macs_and_keep_their_addresses(tmp_path: Path) -> None:
    with Network() as net:
        host = net.add_host()
        with net.start_dns(dhcp_server(tmp_path), tmp_path):
            request = {"interface": "eth0", "api_vip_mac": API_MAC, "ingress_vip_mac": INGRESS_MAC}
            reply = host.step("dhcp-lease-allocate", [json.dumps(request)])
            assert "exit_code" not in reply, reply
            out = json.loads(reply["output"])
            assert spec.errors("dhcp_allocation_response", out) == []
            api, ingress = out["api_vip_address"], out["ingress_vip_address"]
            assert api in POOL and ingress in POOL and api != ingress
            lease = out["api_vip_lease"]
            assert lease.startswith("lease {\n") and lease.endswith("}\n")
            for line in ('  interface "api";', f"  fixed-address {api};", "  option routers 10.201.0.1;",
                         "  option dhcp-lease-time 3600;", "  option dhcp-server-identifier 10.201.0.1;"):
                assert line in lease.splitlines(), lease
            # the server's side: two clients, under the VIP MACs and the Go agent's hostnames
            served = (tmp_path / "leases").read_text()
            assert f"{API_MAC} {api} 00-1a-4a-10-00-01-api" in served
            assert f"{INGRESS_MAC} {ingress} 00-1a-4a-10-00-02-ingress" in served
            for link in ("api", "ingress"):
                assert host.run(["ip", "link", "show", link]).returncode != 0  # removed again
            # renewal from the previous leases: the same addresses, even after the server forgot its leases
            (tmp_path / "leases").write_text("")
            again = host.step("dhcp-lease-allocate", [json.dumps(
                {**request, "api_vip_lease": out["api_vip_lease"], "ingress_vip_lease": out["ingress_vip_lease"]})])
            renewed = json.loads(again["output"])
            assert (renewed["api_vip_address"], renewed["ingress_vip_address"]) == (api, ingress)


@pytest.mark.netns
@needs_root
def test_without_a_dhcp_server_the_exchange_gives_up_at_its_deadline() -> None:
    with Network() as net:
        host = net.add_host()
        code = ("import time, sys; from steps.lib import dhcp; from common.errors import StepError\n"
                "start = time.monotonic()\n"
                "try:\n"
                f"    dhcp.acquire('eth0', {API_MAC!r}, hostname='x', previous=None, deadline=start + 2.5)\n"
                "except StepError as exc:\n"
                "    print(round(time.monotonic() - start, 1), exc.message)\n")
        proc = host.run([sys.executable, "-c", code], timeout=30)
        seconds, _, message = proc.stdout.strip().partition(" ")
        assert message == f"no DHCP lease for {API_MAC} on eth0: no server answered before the deadline", proc
        assert 2.4 <= float(seconds) < 5


def test_lease_text_round_trip_and_previous_address() -> None:
    lease = dhcp.Lease("10.201.0.151", "10.201.0.1", {1: bytes([255, 255, 255, 0]), 51: (600).to_bytes(4, "big")},
                       acquired=0.0)
    text = lease.to_text("api")
    assert "  expire 4 1970/01/01 00:10:00;" in text.splitlines()  # 1 January 1970 was a Thursday
    assert "  renew 4 1970/01/01 00:05:00;" in text.splitlines()
    assert dhcp.previous_address(text) == "10.201.0.151"
    assert dhcp.previous_address("lease {\n  fixed-address 10.1.1.1;\n}\nlease {\n  fixed-address 10.1.1.2;\n}\n") \
        == "10.1.1.2"  # a lease file's last lease is the current one
    assert dhcp.previous_address("garbage") is None


@pytest.mark.parametrize(("request_", "message"), [
    # go-openapi's validation of DhcpAllocationRequest, word for word as the Go agent replies it
    ({"interface": "eth0", "api_vip_mac": "invalid_mac", "ingress_vip_mac": INGRESS_MAC},
     'validation failure list:\napi_vip_mac in body must be of type mac: "invalid_mac"'),
    ({"api_vip_mac": API_MAC}, "validation failure list:\ningress_vip_mac in body is required\n"
                               "interface in body is required"),
    ({"interface": "eth0", "api_vip_mac": "", "ingress_vip_mac": 'a"b'},
     'validation failure list:\napi_vip_mac in body must be of type mac: ""\n'
     'ingress_vip_mac in body must be of type mac: "a\\"b"'),
    ({"interface": 7, "api_vip_mac": API_MAC, "ingress_vip_mac": INGRESS_MAC},
     "json: cannot unmarshal number into Go struct field DhcpAllocationRequest.interface of type string"),
    ({"interface": "eth0", "api_vip_mac": API_MAC, "ingress_vip_mac": API_MAC},
     "dhcp-lease-allocate: api_vip_mac and ingress_vip_mac must differ"),
])
def test_bad_requests_are_refused_in_the_go_agents_words(request_: dict[str, object], message: str) -> None:
    from common.errors import InvalidStepArguments

    with pytest.raises(InvalidStepArguments) as caught:
        parse_request(json.dumps(request_))
    assert caught.value.message == message


def test_macs_go_accepts_are_taken_in_every_spelling() -> None:
    for mac in ("00:1A:4A:10:00:01", "00-1a-4a-10-00-01", "001a.4a10.0001"):
        request = {"interface": "eth0", "api_vip_mac": mac, "ingress_vip_mac": INGRESS_MAC}
        assert parse_request(json.dumps(request)).macs["api"] == "00:1a:4a:10:00:01"


@pytest.mark.netns
@needs_root
@pytest.mark.parametrize(("interface", "api_mac", "error"), [
    ("invalid-interface", API_MAC, "numerical result out of range"),  # the kernel's ERANGE for 16+ characters
    ("eth9", API_MAC, "Link not found"),  # vishvananda/netlink's words for ENODEV
    ("eth0", "01:00:5e:00:00:01", "cannot assign requested address"),  # a multicast MAC, refused by the kernel
])
def test_link_errors_are_the_kernels_as_in_the_go_agent(interface: str, api_mac: str, error: str) -> None:
    with Network() as net:
        host = net.add_host()
        request = {"interface": interface, "api_vip_mac": api_mac, "ingress_vip_mac": INGRESS_MAC}
        reply = host.step("dhcp-lease-allocate", [json.dumps(request)])
        assert (reply["exit_code"], reply["error"], reply.get("output", "")) == (-1, error, "")
        assert host.run(["ip", "link", "show", "api"]).returncode != 0  # nothing left behind


@pytest.mark.netns
@needs_root
def test_an_interface_of_the_host_named_like_a_vip_is_left_alone() -> None:
    with Network() as net:
        host = net.add_host()
        host.run(["ip", "link", "add", "api", "link", "eth0", "type", "macvlan", "mode", "bridge"], check=True)
        request = {"interface": "eth0", "api_vip_mac": API_MAC, "ingress_vip_mac": INGRESS_MAC}
        reply = host.step("dhcp-lease-allocate", [json.dumps(request)])
        assert reply["exit_code"] == -1 and "the host already has an interface named api" in reply["error"]
        assert host.run(["ip", "link", "show", "api"]).returncode == 0
