"""container/iso/hostname-from-dhcp: the discovery live system takes its name from its DHCP lease (the lab's
dnsmasq names machines lab-0, lab-1...), as NetworkManager does on the real discovery ISO; networkd's own request
is refused by hostnamed (no polkit), so the host stayed ``localhost`` and the agent reported its MAC-made name.
The booted case is tests/e2e/test_lab.py (the inventory's hostname is the machine's name)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.paths import ROOT

SCRIPT = ROOT / "container" / "iso" / "hostname-from-dhcp"
#: A networkd lease file as systemd 252 writes it (/run/systemd/netif/leases/IFINDEX).
LEASE = """# This is private data. Do not parse.
ADDRESS=192.168.126.10
NETMASK=255.255.255.0
ROUTER=192.168.126.1
SERVER_ADDRESS=192.168.126.1
NEXT_SERVER=192.168.126.1
BROADCAST=192.168.126.255
DNS=192.168.126.1
NTP=192.168.126.1
DOMAINNAME=lab.example.com
HOSTNAME=lab-0
CLIENTID=ff48e00f2a00020000ab11e4f1ef3e41fb3bd1
"""


def run(tmp_path: Path, leases: dict[str, str], static: str | None = None) -> tuple[str, str]:
    (tmp_path / "leases").mkdir()
    for name, text in leases.items():
        (tmp_path / "leases" / name).write_text(text)
    if static is not None:
        (tmp_path / "hostname").write_text(static)
    (tmp_path / "kernel").write_text("localhost\n")
    proc = subprocess.run(["sh", str(SCRIPT), str(tmp_path / "leases"), str(tmp_path / "hostname"),
                           str(tmp_path / "kernel")], capture_output=True, text=True, timeout=60, check=True)
    return (tmp_path / "kernel").read_text().strip(), proc.stdout


def test_the_lease_names_the_host(tmp_path: Path) -> None:
    name, said = run(tmp_path, {"1": "ADDRESS=192.168.126.99\n", "2": LEASE})
    assert name == "lab-0" and "from" in said


def test_a_static_name_wins(tmp_path: Path) -> None:
    name, said = run(tmp_path, {"2": LEASE}, static="# set by hand\nmaster-0\n")
    assert name == "localhost" and "names this host" in said


def test_a_comment_only_hostname_file_is_no_name(tmp_path: Path) -> None:
    assert run(tmp_path, {"2": LEASE}, static="# nothing\n\n")[0] == "lab-0"


def test_no_lease_with_a_name_leaves_it(tmp_path: Path) -> None:
    name, said = run(tmp_path, {"1": "ADDRESS=192.168.126.99\n"})
    assert name == "localhost" and "keeps localhost" in said


def test_the_live_system_runs_it_before_network_online() -> None:
    build = (ROOT / "container" / "iso" / "build-iso.sh").read_text()
    unit = build.split("assisted-hostname.service\" <<'UNIT'")[1].split("UNIT")[0]
    assert "Before=network-online.target" in unit and "After=systemd-networkd-wait-online.service" in unit
    assert "systemctl enable assisted-hostname.service" in build
