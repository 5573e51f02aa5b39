"""common.hostnames: the one list of names that name no host, which the agent replaces and the service refuses."""

from __future__ import annotations

import pytest

from common.hostnames import FORBIDDEN
from inventory.hostname import replace_localhost
from rules.hardware import hostname_problem

NIC = {"name": "eth0", "type": "physical", "mac_address": "52:54:00:AA:BB:CC", "ipv4_addresses": ["192.0.2.5/24"]}


def test_the_go_agents_list() -> None:
    assert sorted(FORBIDDEN) == ["localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4",
                                 "localhost6", "localhost6.localdomain6"]


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_each_is_replaced_by_the_agent_and_refused_by_the_service(name: str) -> None:
    assert replace_localhost(name, [NIC]) == "52-54-00-aa-bb-cc"
    assert hostname_problem(name) == f"The host name {name} is forbidden"


@pytest.mark.parametrize("name", ["localhost.example.com", "mylocalhost", "worker-0"])
def test_names_merely_like_them_are_kept(name: str) -> None:
    assert replace_localhost(name, [NIC]) == name
    assert hostname_problem(name) is None
