"""inventory.netlink's own RTNETLINK dump inside a network namespace holding what the root one lacks: a bridge
with a member, a link down, a multipath route and a route of another table, compared with what the
kernel said it made (iproute2 is only used to make them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from inventory import netlink
from tests.support.netns import Host, Network, run_in

pytestmark = [pytest.mark.netns, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with Network(tag="nl") as net:
        h = net.add_host()
        h.ip("link", "add", "br-nl", "type", "bridge")
        h.ip("link", "add", "vnl-member", "type", "veth", "peer", "name", "vnl-down")  # (no dummy module here)
        h.ip("link", "set", "vnl-member", "master", "br-nl")
        h.ip("link", "set", "br-nl", "up")
        h.ip("link", "set", "vnl-member", "up")
        h.ip("addr", "add", "192.0.2.1/24", "dev", "br-nl")
        h.ip("addr", "add", "2001:db8:5::1/64", "dev", "br-nl", "nodad")
        h.ip("route", "add", "198.51.100.0/24", "nexthop", "via", net.hub_ipv4, "dev", "eth0",
             "nexthop", "via", "192.0.2.7", "dev", "br-nl")
        h.ip("route", "add", "default", "via", "192.0.2.9", "dev", "br-nl", "table", "100")
        yield h


def _snapshot(host: Host) -> dict[str, list[dict[str, Any]]]:
    return run_in(host.name, netlink.dump)


def test_links_with_their_kind_master_and_flags(host: Host) -> None:
    links = {li["name"]: li for li in _snapshot(host)["links"]}
    assert {"lo", "eth0", "br-nl", "vnl-member", "vnl-down"} <= set(links)
    assert (links["br-nl"]["kind"], links["vnl-down"]["kind"], links["lo"]["kind"]) == ("bridge", "veth", None)
    assert links["vnl-member"]["master"] == links["br-nl"]["index"] and links["vnl-down"]["master"] is None
    assert links["vnl-down"]["flags"] & 0x1 == 0 and links["vnl-member"]["flags"] & 0x1
    assert links["eth0"]["address"] == host.mac and links["lo"]["address"] is None


def test_addresses_of_both_families(host: Host) -> None:
    snap = _snapshot(host)
    index = next(li["index"] for li in snap["links"] if li["name"] == "br-nl")
    mine = {(a["family"], a["address"], a["prefixlen"]) for a in snap["addresses"] if a["index"] == index}
    assert {(2, "192.0.2.1", 24), (10, "2001:db8:5::1", 64)} <= mine


def test_multipath_and_other_tables(host: Host) -> None:
    snap = _snapshot(host)
    names = {li["index"]: li["name"] for li in snap["links"]}
    multi = next(r for r in snap["routes"] if r["dst"] == "198.51.100.0")
    assert (multi["dst_len"], multi["table"], multi["oif"]) == (24, 254, None)
    assert [(names[h["oif"]], h["gateway"]) for h in multi["multipath"]] == [
        ("eth0", "10.201.0.1"), ("br-nl", "192.0.2.7")]
    other = next(r for r in snap["routes"] if r["table"] == 100)
    assert (other["dst"], other["gateway"], names[other["oif"]]) == (None, "192.0.2.9", "br-nl")
