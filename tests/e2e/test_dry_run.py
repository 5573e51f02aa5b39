"""The Go agent's dry-run variables (DRY_*): parsed purely, then honoured by real agent processes against the
real reference service -- two agents on this one machine are two hosts, and a dry-run reboot only writes its
marker and stops the agent."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.dry_run import DrySettings, apply_to_inventory, validate
from tests.support.service import RefService, start_agent

ID_A = "aaaaaaaa-1111-4111-8111-000000000001"
ID_B = "bbbbbbbb-2222-4222-8222-000000000002"

INVENTORY: dict[str, Any] = {
    "hostname": "build-box",
    "interfaces": [
        {"name": "lo0", "type": "loopback", "mac_address": "", "ipv4_addresses": ["127.0.0.1/8"]},
        {"name": "wlan0", "type": "physical", "mac_address": "02:00:00:00:00:01", "ipv4_addresses": []},
        {"name": "eth0", "type": "physical", "mac_address": "02:00:00:00:00:02",
         "ipv4_addresses": ["10.1.2.3/24", "10.1.2.4/24"], "ipv6_addresses": ["fd00::2/64"]},
        {"name": "eth1", "type": "physical", "mac_address": "02:00:00:00:00:03", "ipv4_addresses": ["10.9.9.9/16"]},
    ],
}


def test_settings_come_from_the_go_agents_variables() -> None:
    env = {"DRY_ENABLE": "true", "DRY_HOST_ID": ID_A, "DRY_FORCED_MAC_ADDRESS": "AA:BB:CC:DD:EE:01",
           "DRY_FORCED_HOSTNAME": "swarm-1", "DRY_FORCED_HOST_IPV4": "192.168.7.1/24",
           "DRY_FAKE_REBOOT_MARKER_PATH": "/tmp/x/marker"}
    s = DrySettings.from_env(env)
    assert (s.enabled, s.forced_host_id, s.mac_address, s.hostname, s.host_ipv4, s.reboot_marker_path) == (
        True, ID_A, "aa:bb:cc:dd:ee:01", "swarm-1", "192.168.7.1/24", "/tmp/x/marker")
    assert validate(s) == []


def test_without_dry_enable_nothing_is_forced() -> None:
    s = DrySettings.from_env({"DRY_HOST_ID": ID_A, "DRY_FORCED_HOSTNAME": "x", "DRY_FAKE_REBOOT_MARKER_PATH": "/m"})
    assert not s.enabled and s.forced_host_id == "" and s.reboot_marker_path == ""
    assert apply_to_inventory(INVENTORY, s) is INVENTORY
    assert DrySettings.from_env({"DRY_HOST_ID": ID_A}, flag=True).forced_host_id == ID_A  # --dry-run is enough


def test_inventory_forced_on_the_first_physical_ipv4_interface_others_dropped() -> None:
    s = DrySettings.from_env({"DRY_ENABLE": "1", "DRY_FORCED_HOSTNAME": "swarm-2",
                              "DRY_FORCED_MAC_ADDRESS": "aa:bb:cc:dd:ee:02", "DRY_FORCED_HOST_IPV4": "192.168.7.2"})
    before = json.dumps(INVENTORY)
    out = apply_to_inventory(INVENTORY, s)
    assert json.dumps(INVENTORY) == before  # the input is untouched
    assert out["hostname"] == "swarm-2"
    (nic,) = out["interfaces"]
    assert nic["name"] == "eth0" and nic["mac_address"] == "aa:bb:cc:dd:ee:02"
    assert nic["ipv4_addresses"] == ["192.168.7.2/24", "10.1.2.4/24"]  # the replaced address's prefix kept
    assert nic["ipv6_addresses"] == []  # the machine's own, which every simulated host would share


def test_only_hostname_forced_keeps_every_interface() -> None:
    out = apply_to_inventory(INVENTORY, DrySettings(enabled=True, hostname="h"))
    assert out["hostname"] == "h" and out["interfaces"] == INVENTORY["interfaces"]


@pytest.mark.parametrize(("var", "value"), [("DRY_HOST_ID", "not-a-uuid"), ("DRY_FORCED_HOST_IPV4", "10.0.0.300"),
                                            ("DRY_FORCED_MAC_ADDRESS", "aa:bb:cc")])
def test_bad_forced_values_are_named(var: str, value: str) -> None:
    (problem,) = validate(DrySettings.from_env({"DRY_ENABLE": "true", var: value}))
    assert problem.startswith(var)


def _has_inventory(host_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda h: h["id"] == host_id and bool(h.get("inventory"))


def _dry_env(host_id: str, name: str, mac: str, ipv4: str, marker: Path) -> dict[str, str]:
    return {"DRY_ENABLE": "true", "DRY_HOST_ID": host_id, "DRY_FORCED_HOSTNAME": name,
            "DRY_FORCED_MAC_ADDRESS": mac, "DRY_FORCED_HOST_IPV4": ipv4,
            "DRY_FAKE_REBOOT_MARKER_PATH": str(marker)}


def test_two_dry_agents_on_one_machine_are_two_hosts_and_a_reboot_only_writes_the_marker(
        service: RefService, tmp_path: Path) -> None:
    cluster = service.create_cluster(control_plane_count=1)
    ie = str(service.create_infra_env(cluster_id=cluster["id"])["id"])
    marker_a, marker_b = tmp_path / "a" / "rebooted", tmp_path / "b" / "rebooted"
    env_a = _dry_env(ID_A, "swarm-a", "aa:bb:cc:00:00:0a", "192.168.50.10/24", marker_a)
    env_b = _dry_env(ID_B, "swarm-b", "aa:bb:cc:00:00:0b", "192.168.50.11/24", marker_b)
    with start_agent(service.url, ie, env=env_a, log=tmp_path / "a.log") as agent_a, \
            start_agent(service.url, ie, env=env_b, log=tmp_path / "b.log") as agent_b:
        hosts = {host_id: service.wait_host(ie, _has_inventory(host_id), timeout=60) for host_id in (ID_A, ID_B)}
        assert {h["id"] for h in service.hosts(ie)} == {ID_A, ID_B}
        for host_id, name, mac, ip in ((ID_A, "swarm-a", "aa:bb:cc:00:00:0a", "192.168.50.10/24"),
                                       (ID_B, "swarm-b", "aa:bb:cc:00:00:0b", "192.168.50.11/24")):
            host = hosts[host_id]
            inventory = json.loads(host["inventory"])
            assert inventory["hostname"] == name
            (nic,) = inventory["interfaces"]
            assert nic["mac_address"] == mac and nic["ipv4_addresses"][0] == ip
        assert f"registered host {ID_A} (id from DRY_HOST_ID)" in agent_a.log

        service.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{ID_A}/instructions", expected=201,
                     json={"step_type": "reboot", "args": [json.dumps({"delay_seconds": 0, "reason": "dry test"})]})
        (reply,) = service.wait_replies(ID_A, "reboot", timeout=30)
        assert reply.get("exit_code", 0) == 0, reply
        output = json.loads(reply["output"])
        assert output["dry_run"] is True and output["marker"] == str(marker_a)
        assert json.loads(marker_a.read_text())["reason"] == "dry test"
        assert agent_a.wait(timeout=30) == 0  # the simulated host "rebooted": its agent is gone
        assert "dry-run reboot" in agent_a.log
        assert agent_b.alive() and not marker_b.exists()  # the other host goes on
    assert os.path.exists(marker_a)


def test_the_go_agents_dry_run_flags_do_what_its_variables_do(service: RefService, tmp_path: Path) -> None:
    """``-dry-run -force-id ... -forced-ipv4 ...`` in the Go flag spelling, no DRY_* variable set: the host
    registers with the forced id and reports the forced hostname, MAC and address (steps read them too)."""
    cluster = service.create_cluster(control_plane_count=1)
    ie = str(service.create_infra_env(cluster_id=cluster["id"])["id"])
    env = {var: "" for var in ("DRY_ENABLE", "DRY_HOST_ID", "DRY_FORCED_HOSTNAME", "DRY_FORCED_MAC_ADDRESS",
                               "DRY_FORCED_HOST_IPV4", "DRY_FAKE_REBOOT_MARKER_PATH")}
    args = ["-dry-run", "-force-id", ID_B, "-force-hostname", "flag-host", "-force-mac=aa:bb:cc:00:00:0c",
            "--forced-ipv4", "192.168.50.12/24", "-fake-reboot-marker-path", str(tmp_path / "rebooted")]
    with start_agent(service.url, ie, env=env, args=args, log=tmp_path / "agent.log") as agent:
        host = service.wait_host(ie, _has_inventory(ID_B), timeout=60)
        inventory = json.loads(host["inventory"])
        assert inventory["hostname"] == "flag-host"
        (nic,) = inventory["interfaces"]
        assert nic["mac_address"] == "aa:bb:cc:00:00:0c" and nic["ipv4_addresses"][0] == "192.168.50.12/24"
        assert f"registered host {ID_B} (id from DRY_HOST_ID)" in agent.log
