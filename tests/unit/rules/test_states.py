"""rules.states: where a host's registration, its validations and its cluster put it, as the real service's
state machines do (pure functions of documents)."""

from __future__ import annotations

import pytest

from common.errors import ServiceRefusal
from rules import states
from rules.registry import Rulebook


def test_a_cluster_needs_three_masters_or_one_for_single_node() -> None:
    assert states.required_hosts({"control_plane_count": 3}) == 3
    assert states.required_hosts({"high_availability_mode": "None", "control_plane_count": 1}) == 1


def test_roles_are_assigned_masters_first_with_one_bootstrap() -> None:
    hosts = [{"id": str(i), "role": "auto-assign"} for i in range(5)]
    hosts[3]["role"] = "worker"
    states.assign_roles({"control_plane_count": 3}, hosts)
    assert [h["role"] for h in hosts] == ["master", "master", "master", "worker", "worker"]
    assert [bool(h.get("bootstrap")) for h in hosts] == [True, False, False, False, False]


@pytest.mark.parametrize(("status", "bound", "change", "forget"), [
    ("known", True, ("discovering", None), True),
    ("known-unbound", False, ("discovering-unbound", None), True),
    ("installing", True, ("error", "The host unexpectedly restarted during the installation"), False),
    ("preparing-successful", True, ("known", None), False),
])
def test_a_host_that_registers_again(status: str, bound: bool, change: object, forget: bool) -> None:
    assert states.on_reregistration({"id": "h", "status": status}, bound) == (change, forget)


def test_an_installed_host_cannot_register_again() -> None:
    with pytest.raises(ServiceRefusal) as err:
        states.on_reregistration({"id": "h", "status": "installed"}, True)
    assert err.value.status == 409


def test_a_host_without_contact_or_inventory_goes_no_further() -> None:
    host = {"id": "h", "status": "insufficient", "cluster_id": "c", "inventory": "{}"}
    validations = Rulebook.of().validations
    assert states.host_status(host, {}, connected=False, validations=validations) == ("disconnected", None)
    assert states.host_status({**host, "inventory": ""}, {}, True, validations) == ("discovering", None)
    assert states.host_status(host, {}, connected=True, validations=validations) == ("known", None)


def test_only_a_host_in_an_upgradable_state_with_another_agent_is_upgraded() -> None:
    host = {"status": "known", "discovery_agent_version": "old"}
    assert states.needs_upgrade(host, "new")
    assert not states.needs_upgrade(host, "old") and not states.needs_upgrade(host, None)
    assert not states.needs_upgrade({**host, "status": "installing"}, "new")
