"""inventory.bmc: the BMC's addresses from ipmitool, asked only when an IPMI device exists."""

from __future__ import annotations

from pathlib import Path

from common.host import Host, RecordedRunner
from inventory import bmc
from inventory.options import Options
from tests.support.paths import FIXTURES

LAN_PRINT = "IP Address Source       : Static Address\nIP Address              : {ip}\n"
DYNAMIC = """IPv6 Dynamic Address 0:
    Source/Type:    SLAAC
    Address:        fe80::d28e:79ff:fec2:1105/64
    Status:         active
IPv6 Dynamic Address 1:
    Source/Type:    DHCPv6
    Address:        2001:db8:100::21/128
    Status:         active
"""
STATIC = """IPv6 Static Address 0:
    Enabled:        false
    Address:        2001:db8:1::5/64
    Status:         disabled
IPv6 Static Address 1:
    Enabled:        true
    Address:        2001:db8:2::5/64
    Status:         active
"""


def test_the_recorded_server_reports_its_bmc_on_both_families() -> None:
    got = bmc.collect(Host.at(FIXTURES / "baremetal-server"), Options())
    assert got == {"bmc_address": "10.1.100.21", "bmc_v6address": "2001:db8:100::21"}


def test_a_machine_without_an_ipmi_device_reports_the_go_defaults() -> None:
    # kvm-vm has no /dev/ipmi0: ipmitool is not asked (it would only fail, slowly)
    assert bmc.collect(Host.at(FIXTURES / "kvm-vm"), Options()) == {"bmc_address": "0.0.0.0", "bmc_v6address": "::/0"}


def test_ipmitool_without_a_device_is_not_asked(tmp_path: Path) -> None:
    runner = RecordedRunner([{"argv": ["ipmitool", "lan", "print", "1"], "stdout": LAN_PRINT.format(ip="10.0.0.9")}])
    assert bmc.collect(Host(tmp_path, runner), Options())["bmc_address"] == "0.0.0.0"


def test_unspecified_and_unparsable_channels_are_passed_over(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "ipmi0").write_text("")
    runner = RecordedRunner([
        {"argv": ["ipmitool", "lan", "print", "1"], "stdout": LAN_PRINT.format(ip="0.0.0.0")},
        {"argv": ["ipmitool", "lan", "print", "2"], "stdout": LAN_PRINT.format(ip="not-an-ip")},
        {"argv": ["ipmitool", "lan", "print", "3"], "exit_code": 1, "stdout": LAN_PRINT.format(ip="10.0.0.1")},
        {"argv": ["ipmitool", "lan", "print", "7"], "stdout": LAN_PRINT.format(ip="10.0.0.7")},
        {"argv": ["ipmitool", "lan6", "print", "2", "enables"], "stdout": "IPv6/IPv4 Addressing Enables: ipv4\n"},
        {"argv": ["ipmitool", "lan6", "print", "4", "enables"], "stdout": "IPv6/IPv4 Addressing Enables: both\n"},
        {"argv": ["ipmitool", "lan6", "print", "4", "dynamic_addr"], "stdout": ""},
        {"argv": ["ipmitool", "lan6", "print", "4", "static_addr"], "stdout": STATIC},
    ])
    got = bmc.collect(Host(tmp_path, runner), Options())
    assert got == {"bmc_address": "10.0.0.7", "bmc_v6address": "2001:db8:2::5"}


def test_lan6_takes_the_active_dynamic_address_and_never_a_link_local_one() -> None:
    assert bmc.parse_lan6(DYNAMIC, dynamic=True) == "2001:db8:100::21"
    only_link_local = DYNAMIC.split("IPv6 Dynamic Address 1:")[0]
    assert bmc.parse_lan6(only_link_local, dynamic=True) is None
    assert bmc.parse_lan6(DYNAMIC.replace("active", "inactive"), dynamic=True) is None


def test_lan6_static_takes_the_enabled_entry_only() -> None:
    assert bmc.parse_lan6(STATIC, dynamic=False) == "2001:db8:2::5"
    assert bmc.parse_lan6(STATIC.replace("true", "false"), dynamic=False) is None
    # a static entry is not a dynamic one, whatever its status
    assert bmc.parse_lan6(STATIC, dynamic=True) is None
