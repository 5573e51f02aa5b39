"""The real agent's outgoing-NIC rule on a sysfs tree shaped like a real machine's: physical NICs, a bond, a
VLAN, and the virtual kinds that must not be probed from (this kernel has no 802.1Q or bonding, so the
kinds come from a recorded tree, the addresses from a stand-in for getifaddrs)."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from common.errors import StepError
from common.host import Host, RecordedRunner
from steps.connectivity_check import outgoing_nics, require_live

PCI = "devices/pci0000:00/0000:00:03.0/net"


def sysfs(root: Path) -> Host:
    def nic(name: str, target: str, *, mtu: int = 1500, extra: tuple[str, ...] = ()) -> None:
        real = root / "sys" / target / name
        real.mkdir(parents=True)
        (real / "address").write_text(f"52:54:00:00:00:{len(name):02x}\n")
        (real / "mtu").write_text(f"{mtu}\n")
        (real / "type").write_text("772\n" if name == "lo" else "1\n")
        (real / "ifindex").write_text("3\n")
        for folder in extra:
            (real / folder).mkdir()
        link = root / "sys/class/net" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../../") / target / name)

    nic("lo", "devices/virtual/net", mtu=65536)
    nic("ens3", PCI, mtu=9000)          # physical, addresses: a NIC to probe from
    nic("ens4", PCI)                    # physical, link-local only: skipped (ARP-table pollution fix)
    nic("ens5", PCI)                    # physical, no address at all: skipped
    nic("bond0", "devices/virtual/net", extra=("bonding",))
    nic("bond0.100", "devices/virtual/net")
    nic("veth1", "devices/virtual/net")  # virtual: not probed from
    nic("br0", "devices/virtual/net", extra=("bridge",))
    vlan = root / "proc/net/vlan/bond0.100"
    vlan.parent.mkdir(parents=True)
    vlan.write_text("bond0.100  VID: 100\n")
    return Host(root, RecordedRunner([]), {"links": []})


def addr(family: int, address: str, netmask: str) -> Any:
    """What psutil.net_if_addrs() lists per address (its fields, not its private class)."""
    return SimpleNamespace(family=family, address=address, netmask=netmask, broadcast=None, ptp=None)


ADDRS = {
    "lo": [addr(socket.AF_INET, "127.0.0.1", "255.0.0.0")],
    "ens3": [addr(socket.AF_INET, "192.168.10.5", "255.255.255.0"),
             addr(socket.AF_INET6, "fe80::1%ens3", "ffff:ffff:ffff:ffff::")],
    "ens4": [addr(socket.AF_INET, "169.254.3.3", "255.255.0.0"),
             addr(socket.AF_INET6, "fe80::2%ens4", "ffff:ffff:ffff:ffff::")],
    "bond0": [addr(socket.AF_INET6, "fd00::7", "ffff:ffff:ffff:ffff::")],
    "bond0.100": [addr(socket.AF_INET, "10.100.0.5", "255.255.254.0")],
    "veth1": [addr(socket.AF_INET, "10.9.0.1", "255.255.255.0")],
    "br0": [addr(socket.AF_INET, "10.8.0.1", "255.255.255.0")],
}


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    monkeypatch.setattr(psutil, "net_if_addrs", lambda: ADDRS)
    return sysfs(tmp_path)


def test_physical_bond_and_vlan_with_real_addresses(host: Host) -> None:
    nics = {n.name: n for n in outgoing_nics(host)}
    assert sorted(nics) == ["bond0", "bond0.100", "ens3"]
    assert nics["ens3"].mtu == 9000
    assert [str(i) for i in nics["ens3"].usable(4)] == ["192.168.10.5/24"]
    assert nics["ens3"].usable(6) == []  # link-local only: no IPv6 probes from it
    assert [str(i) for i in nics["bond0.100"].usable(4)] == ["10.100.0.5/23"]
    assert [str(i) for i in nics["bond0"].usable(6)] == ["fd00::7/64"]


def test_virtual_nics_only_when_asked(host: Host) -> None:
    assert sorted(n.name for n in outgoing_nics(host, virtual=True)) == ["bond0", "bond0.100", "ens3", "veth1"]
    assert sorted(n.name for n in outgoing_nics(host, any_kind=True)) == ["bond0", "bond0.100", "ens3", "veth1"]


def test_a_recorded_host_cannot_be_probed(host: Host) -> None:
    with pytest.raises(StepError, match="needs the live host's network"):
        require_live(host, "connectivity-check")
