"""inventory.routes: the main table's routes in the Go agent's shape."""

from __future__ import annotations

from typing import Any

from common.host import Host
from inventory import routes
from inventory.options import Options
from tests.support.paths import FIXTURES

LINKS = [{"index": 2, "name": "eth0"}, {"index": 3, "name": "eth1"}]


def test_main_table_only_with_default_destinations_per_family() -> None:
    snap: dict[str, list[dict[str, Any]]] = {"links": LINKS, "routes": [
        {"family": 2, "table": 254, "dst": None, "gateway": "192.0.2.1", "oif": 2, "priority": 100},
        {"family": 10, "table": 254, "dst": None, "gateway": "fe80::1", "oif": 3, "priority": None},
        {"family": 2, "table": 100, "dst": None, "gateway": "198.51.100.1", "oif": 2},  # policy table: left out
        {"family": 2, "table": 255, "dst": "127.0.0.1", "oif": 2},  # local table: left out
    ]}
    assert routes.routes(snap) == [
        {"interface": "eth0", "destination": "0.0.0.0", "gateway": "192.0.2.1", "family": 2, "metric": 100},
        {"interface": "eth1", "destination": "::", "gateway": "fe80::1", "family": 10, "metric": 0},
    ]


def test_multipath_takes_the_first_hop_and_unknown_interfaces_are_left_out() -> None:
    snap: dict[str, list[dict[str, Any]]] = {"links": LINKS, "routes": [
        {"family": 2, "table": 254, "dst": "172.16.0.0", "oif": None, "priority": 20,
         "multipath": [{"oif": 3, "gateway": "192.0.2.7"}, {"oif": 2, "gateway": "192.0.2.8"}]},
        {"family": 2, "table": 254, "dst": "10.0.0.0", "oif": 9},  # no such link
        {"family": 2, "table": 254, "dst": "10.1.0.0", "oif": None},  # no interface at all
    ]}
    assert routes.routes(snap) == [
        {"interface": "eth1", "destination": "172.16.0.0", "gateway": "192.0.2.7", "family": 2, "metric": 20}]


def test_the_recorded_bonded_host() -> None:
    got = routes.collect(Host.at(FIXTURES / "bonds-vlans-bridges"), Options())["routes"]
    assert {"interface": "bond0.200", "destination": "172.16.0.0", "gateway": "192.168.200.1", "family": 2,
            "metric": 20} in got
    assert all(r["gateway"] != "192.168.200.254" for r in got)  # that one is in table 100
    assert [r["destination"] for r in got if r["gateway"]] == ["0.0.0.0", "172.16.0.0", "::"]
