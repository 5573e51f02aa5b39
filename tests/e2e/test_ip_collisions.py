"""no-ip-collisions-in-network: the cluster's ip_collisions report (one pass over the hosts) and the host-level
verdict in the real service's words; then end to end, two real dry-run agents claiming one IPv4 address."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rules import ip_collisions
from rules.cluster_model import ClusterModel
from rules.documents import HostView
from rules.registry import Rulebook
from tests.support.service import RefService, start_agent

RULES = Rulebook.of()  # every area's hooks, as the service's
VALIDATIONS = RULES.validations

A = "aaaaaaaa-0000-4000-8000-00000000000a"
B = "bbbbbbbb-0000-4000-8000-00000000000b"
C = "cccccccc-0000-4000-8000-00000000000c"


def host(host_id: str, mac: str, *cidrs: str, **extra: Any) -> dict[str, Any]:
    nic = {"name": "eth0", "type": "physical", "mac_address": mac,
           "ipv4_addresses": [c for c in cidrs if ":" not in c], "ipv6_addresses": [c for c in cidrs if ":" in c]}
    return {"id": host_id, "inventory": json.dumps({"hostname": host_id[:4], "interfaces": [nic]}), **extra}


def verdict(h: dict[str, Any], hosts: list[dict[str, Any]], status: str = "insufficient") -> tuple[str, str]:
    cluster: dict[str, Any] = {"id": "c", "status": status}
    ip_collisions.update_cluster(ClusterModel(), cluster, hosts)
    outcome = VALIDATIONS["no-ip-collisions-in-network"].func(HostView(h, {}, cluster, hosts))
    assert outcome is not None
    return outcome


def test_two_hosts_with_one_ipv4_both_fail_with_the_real_message() -> None:
    hosts = [host(A, "02:00:00:00:00:0a", "10.0.0.5/24"), host(B, "02:00:00:00:00:0b", "10.0.0.5/24"),
             host(C, "02:00:00:00:00:0c", "10.0.0.6/24")]
    assert json.loads(ip_collisions.cluster_ip_collisions(ClusterModel(), hosts)) == {
        "10.0.0.5": ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]}
    for h in hosts[:2]:
        assert verdict(h, hosts) == ("failure", f"Collisions detected for host ID {h['id']}, IP address: 10.0.0.5 "
                                                "Mac addresses: 02:00:00:00:00:0a,02:00:00:00:00:0b\n")
    assert verdict(hosts[2], hosts) == ("success", f"No IP collisions were detected by host {C}")


def test_distinct_addresses_pass_and_link_local_or_loopback_never_collide() -> None:
    hosts = [host(A, "02:00:00:00:00:0a", "10.0.0.5/24", "fe80::1/64", "127.0.0.1/8"),
             host(B, "02:00:00:00:00:0b", "10.0.0.7/24", "fe80::1/64", "127.0.0.1/8")]
    assert ip_collisions.cluster_ip_collisions(ClusterModel(), hosts) == "{}"
    assert verdict(hosts[0], hosts) == ("success", f"No IP collisions were detected by host {A}")


def test_ipv6_collision_and_the_connectivity_rule_of_the_real_service() -> None:
    hosts = [host(A, "02:00:00:00:00:0a", "2001:db8::5/64"), host(B, "02:00:00:00:00:0b", "2001:db8:0::5/64")]
    assert verdict(hosts[1], hosts)[0] == "failure"
    # C's connectivity report saw 10.0.0.9 answer from two MACs on one NIC: a collision for whoever holds it
    report = {"remote_hosts": [
        {"host_id": A, "l2_connectivity": [{"outgoing_nic": "eth0", "remote_ip_address": "10.0.0.9",
                                            "remote_mac": "02:00:00:00:00:01", "successful": True}]},
        {"host_id": B, "l2_connectivity": [{"outgoing_nic": "eth0", "remote_ip_address": "10.0.0.9",
                                            "remote_mac": "02:00:00:00:00:02", "successful": True}]}]}
    hosts = [host(A, "02:00:00:00:00:01", "10.0.0.9/24"), host(C, "02:00:00:00:00:0c", "10.0.0.3/24",
                                                                  connectivity=json.dumps(report))]
    assert json.loads(ip_collisions.cluster_ip_collisions(ClusterModel(), hosts)) == {
        "10.0.0.9": ["02:00:00:00:00:01", "02:00:00:00:00:02"]}
    assert verdict(hosts[0], hosts)[0] == "failure"


def test_not_evaluated_outside_pre_install_and_before_inventory() -> None:
    hosts = [host(A, "02:00:00:00:00:0a", "10.0.0.5/24"), host(B, "02:00:00:00:00:0b", "10.0.0.5/24")]
    assert verdict(hosts[0], hosts, status="installing") == ("success", "IP collisions have not yet been evaluated")
    bare = {"id": A}
    assert verdict(bare, [bare]) == ("success", "Host inventory has not yet been defined, skipping validation.")


def _validation(host_doc: dict[str, Any]) -> dict[str, str] | None:
    info = json.loads(host_doc.get("validations_info") or "{}")
    return next((v for vs in info.values() for v in vs if v["id"] == "no-ip-collisions-in-network"), None)


def _judged(host_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    def check(h: dict[str, Any]) -> bool:
        v = _validation(h)
        return h["id"] == host_id and v is not None and v["status"] == status
    return check


def test_two_real_agents_claiming_one_ipv4_fail_and_distinct_ones_pass(service: RefService, tmp_path: Path) -> None:
    cluster = service.create_cluster(control_plane_count=1)
    ie = str(service.create_infra_env(cluster_id=cluster["id"])["id"])

    def env(host_id: str, name: str, mac: str, ip: str) -> dict[str, str]:
        return {"DRY_ENABLE": "true", "DRY_HOST_ID": host_id, "DRY_FORCED_HOSTNAME": name,
                "DRY_FORCED_MAC_ADDRESS": mac, "DRY_FORCED_HOST_IPV4": ip}

    with start_agent(service.url, ie, env=env(A, "coll-a", "aa:00:00:00:00:0a", "192.168.77.5/24"),
                     log=tmp_path / "a.log"), \
            start_agent(service.url, ie, env=env(B, "coll-b", "aa:00:00:00:00:0b", "192.168.77.5/24"),
                        log=tmp_path / "b.log"), \
            start_agent(service.url, ie, env=env(C, "coll-c", "aa:00:00:00:00:0c", "192.168.77.6/24"),
                        log=tmp_path / "c.log"):
        for host_id in (A, B):
            failed = service.wait_host(ie, _judged(host_id, "failure"), timeout=60)
            assert _validation(failed) == {
                "id": "no-ip-collisions-in-network", "status": "failure",
                "message": f"Collisions detected for host ID {host_id}, IP address: 192.168.77.5 "
                           "Mac addresses: aa:00:00:00:00:0a,aa:00:00:00:00:0b\n"}
        passed = service.wait_host(ie, _judged(C, "success"), timeout=60)
        assert _validation(passed)["message"] == f"No IP collisions were detected by host {C}"  # type: ignore[index]
        assert json.loads(service.cluster(cluster["id"])["ip_collisions"]) == {
            "192.168.77.5": ["aa:00:00:00:00:0a", "aa:00:00:00:00:0b"]}
