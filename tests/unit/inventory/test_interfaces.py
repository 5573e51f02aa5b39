"""inventory.interfaces: every link with Go's flag names, addresses (link-local out, /128 widened), device facts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.host import Host, RecordedRunner
from inventory import interfaces
from inventory.options import Options
from tests.support.paths import FIXTURES


def _by_name(machine: str) -> dict[str, dict[str, Any]]:
    got = interfaces.collect(Host.at(FIXTURES / machine), Options())["interfaces"]
    return {i["name"]: i for i in got}


def test_flag_names_in_go_order() -> None:
    assert interfaces.flag_names(0x1 | 0x2 | 0x40 | 0x1000) == ["up", "broadcast", "multicast", "running"]
    assert interfaces.flag_names(0x8 | 0x1 | 0x10000) == ["up", "loopback"]  # LOWER_UP has no Go name
    assert interfaces.flag_names(0) == []


def test_addresses_leave_link_local_out_and_widen_a_128_to_its_ra_prefix() -> None:
    snap = {
        "addresses": [
            {"index": 2, "family": 2, "address": "192.0.2.5", "prefixlen": 24},
            {"index": 2, "family": 10, "address": "fe80::1", "prefixlen": 64},
            {"index": 2, "family": 10, "address": "2001:db8:1::5", "prefixlen": 128},
            {"index": 2, "family": 10, "address": "2001:db8:9::5", "prefixlen": 128},  # no RA prefix holds it
            {"index": 3, "family": 2, "address": "169.254.3.3", "prefixlen": 16},
        ],
        "routes": [
            {"family": 10, "protocol": 9, "dst": "2001:db8:1::", "dst_len": 64, "oif": 2},
            {"family": 10, "protocol": 2, "dst": "2001:db8:9::", "dst_len": 48, "oif": 2},  # kernel, not RA
        ],
    }
    assert interfaces.addresses(snap) == {2: (["192.0.2.5/24"], ["2001:db8:1::5/64", "2001:db8:9::5/128"])}


def test_bonds_vlans_and_bridges_are_typed_and_members_keep_their_permanent_mac() -> None:
    nics = _by_name("bonds-vlans-bridges")
    assert {n: i["type"] for n, i in nics.items()} == {
        "lo": "device", "ens1f0": "physical", "ens1f1": "physical", "bond0": "bond", "br-ex": "bridge",
        "bond0.200": "vlan", "dummy0": "dummy", "tun0": "tuntap"}
    # netlink gives both members the bond's MAC; the second's own is in bonding_slave/perm_hwaddr
    assert nics["ens1f1"]["mac_address"] == "0c:42:a1:5e:7a:11"
    assert nics["br-ex"]["ipv4_addresses"] == ["10.10.0.5/24"]
    assert nics["br-ex"]["ipv6_addresses"] == ["2001:db8:10::5/64"]
    assert nics["ens1f0"]["speed_mbps"] == 25000 and nics["ens1f0"]["vendor"] == "0x15b3"
    assert nics["dummy0"]["has_carrier"] is False and "up" not in nics["dummy0"]["flags"]
    assert nics["tun0"]["flags"] == ["up", "pointtopoint", "multicast", "running"]


def test_a_recorded_tree_without_a_netlink_recording_has_no_interfaces(tmp_path: Path) -> None:
    """Not this machine's links: a recording that lacks them has none."""
    (tmp_path / ".recorded").mkdir()
    (tmp_path / ".recorded" / "commands.json").write_text("[]")
    assert interfaces.collect(Host.at(tmp_path), Options()) == {"interfaces": []}


def test_biosdevname_names_physical_nics_when_the_tool_is_there() -> None:
    snap = json.loads((FIXTURES / "bonds-vlans-bridges" / ".recorded" / "netlink.json").read_text())
    runner = RecordedRunner([{"argv": ["biosdevname", "-i", "ens1f0"], "stdout": "p1p1\n"},
                             {"argv": ["biosdevname", "-i", "bond0"], "stdout": "never asked\n"}])
    host = Host(FIXTURES / "bonds-vlans-bridges", runner, snap)
    nics = {i["name"]: i for i in interfaces.collect(host, Options())["interfaces"]}
    assert nics["ens1f0"]["biosdevname"] == "p1p1"
    assert "biosdevname" not in nics["ens1f1"]  # the tool failed for it (not recorded)
    assert "biosdevname" not in nics["bond0"]  # not physical: not asked
    assert "biosdevname" not in _by_name("kvm-vm")["enp1s0"]  # no tool
