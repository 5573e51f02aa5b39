"""One majority rule at every size: with two equal cliques, ``belongs-to-majority-group`` says the same of
each host at 14 hosts (a cluster evaluated within each request) and at 52 (one evaluated between requests,
its groups computed by the monitor's pass). Before the cluster model, 14 hosts were judged per host by
"more than half" and 52 by the monitor's digest, and a host's verdict changed when the 51st host joined."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.settler import AT_ONCE_HOSTS
from reference_service.store.database import Store
from rules import load_areas

CLUSTER = str(uuid.UUID(int=1 << 100))
IE = str(uuid.UUID(int=2 << 100))


def host_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))  # in id order: host 0 comes first


def address(i: int) -> str:
    return f"10.0.0.{10 + i}"


def inventory(i: int) -> str:
    return json.dumps({"hostname": f"node-{i}", "interfaces": [
        {"name": "eth0", "type": "physical", "mac_address": f"02:00:00:00:00:{i:02x}",
         "ipv4_addresses": [f"{address(i)}/24"], "ipv6_addresses": []}]})


def report(me: int, hosts: int) -> str:
    """Host ``me`` reaches the hosts of its own clique (same parity) and none of the other's."""
    return json.dumps({"remote_hosts": [
        {"host_id": host_id(i), "l2_connectivity": [
            {"outgoing_nic": "eth0", "remote_ip_address": address(i), "remote_mac": f"02:00:00:00:00:{i:02x}",
             **({"successful": True} if i % 2 == me % 2 else {})}]}
        for i in range(hosts) if i != me]})


def verdicts(svc: ReferenceService, hosts: int) -> dict[int, str]:
    out = {}
    for i in range(hosts):
        host = svc.refresh_host(svc.require_host(IE, host_id(i)))
        results = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
        out[i] = results["belongs-to-majority-group"]["status"]
    return out


def grow(svc: ReferenceService, hosts: int) -> None:
    """``hosts`` hosts, each with an inventory and a fresh report of its clique."""
    for i in range(hosts):
        svc.register_host(IE, host_id(i), None)
        svc.post_reply(IE, host_id(i), {"step_id": f"inventory-{i}", "step_type": "inventory",
                                        "output": inventory(i)})
    for i in range(hosts):
        svc.post_reply(IE, host_id(i), {"step_id": f"connectivity-check-{hosts}", "step_type": "connectivity-check",
                                        "output": report(i, hosts)})
    while svc.settler.settle(older_than=0):
        pass
    asyncio.run(svc.settler.tick())  # a big cluster's groups are the monitor's


def test_two_equal_cliques_get_the_same_verdicts_at_14_and_at_52_hosts(tmp_path: Path) -> None:
    load_areas()
    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings(test_mode=True))
    try:
        store.save_cluster({"id": CLUSTER, "kind": "Cluster", "name": "cliques", "base_dns_domain": "example.com",
                            "status": "insufficient", "control_plane_count": 3,
                            "machine_networks": [{"cidr": "10.0.0.0/24"}]})
        store.save_infra_env({"id": IE, "kind": "InfraEnv", "name": "ie", "cluster_id": CLUSTER})
        grow(svc, 14)
        small = verdicts(svc, 14)
        # the clique holding the first host in id order is the group, as in the real service
        assert small == {i: "success" if i % 2 == 0 else "failure" for i in range(14)}
        grow(svc, 52)
        assert store.cluster_size(CLUSTER) > AT_ONCE_HOSTS
        big = verdicts(svc, 52)
        assert {i: big[i] for i in range(14)} == small
        assert big == {i: "success" if i % 2 == 0 else "failure" for i in range(52)}
    finally:
        store.close()
