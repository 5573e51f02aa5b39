"""inventory.netlink: the kernel's links, addresses and routes over a plain netlink socket, or a recording.

The live dump is compared with what iproute2 says of the same network namespace (no root needed to read it).
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from common.host import Host
from inventory import netlink
from tests.support.paths import FIXTURES


def _ip(*args: str) -> Any:
    return json.loads(subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout)


def test_links_are_those_iproute2_sees() -> None:
    got = {li["index"]: li for li in netlink.dump()["links"]}
    want = _ip("link", "show")
    assert set(got) == {li["ifindex"] for li in want}
    for li in want:
        mine = got[li["ifindex"]]
        assert (mine["name"], mine["mtu"]) == (li["ifname"], li["mtu"])
        mac = li.get("address")
        assert mine["address"] == (None if mac in (None, "00:00:00:00:00:00") else mac)
        assert bool(mine["flags"] & 0x1) == ("UP" in li["flags"])
    lo = got[1]
    assert lo["name"] == "lo" and lo["flags"] & 0x8 and lo["kind"] is None and lo["master"] is None


def test_addresses_are_those_iproute2_sees() -> None:
    got = {(a["index"], a["family"], a["address"], a["prefixlen"]) for a in netlink.dump()["addresses"]}
    want = {
        (li["ifindex"], socket.AF_INET if ai["family"] == "inet" else socket.AF_INET6, ai["local"], ai["prefixlen"])
        for li in _ip("addr", "show") for ai in li.get("addr_info", [])
    }
    assert got == want
    assert (1, socket.AF_INET, "127.0.0.1", 8) in got


def test_main_table_routes_are_those_iproute2_sees() -> None:
    names = {li["ifindex"]: li["ifname"] for li in _ip("link", "show")}
    got = {
        (r["dst"] or "default", names.get(r["oif"]), r["gateway"])
        for r in netlink.dump()["routes"] if r["family"] == socket.AF_INET and r["table"] == 254
    }
    want = {
        (r["dst"].split("/")[0], r.get("dev"), r.get("gateway")) for r in _ip("-4", "route", "show", "table", "main")
    }
    assert got == want


def test_a_recording_is_replayed_and_never_mixed_with_this_machine() -> None:
    host = Host.at(FIXTURES / "kvm-vm")
    recorded = json.loads((FIXTURES / "kvm-vm" / ".recorded" / "netlink.json").read_text())
    snap = netlink.snapshot(host)
    assert snap == {k: recorded[k] for k in ("links", "addresses", "routes")}
    snap["links"].clear()  # a copy: the host's recording is not changed by a collector
    assert netlink.snapshot(host)["links"] == recorded["links"]


def test_a_tree_recorded_without_netlink_has_nothing(tmp_path: Path) -> None:
    (tmp_path / ".recorded").mkdir()
    (tmp_path / ".recorded" / "commands.json").write_text("[]")
    assert netlink.snapshot(Host.at(tmp_path)) == {"links": [], "addresses": [], "routes": []}
