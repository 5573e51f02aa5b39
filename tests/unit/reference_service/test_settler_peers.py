"""A small cluster's host is judged again when its peers' reports change what it is judged by, without waiting
for its own next poll: the real service's host monitor re-evaluates every host every 8 s, so a host whose peers
answered their connectivity checks after it did is known within seconds there; here it waited a poll interval
(60 s) more (docs/real-service.md: 3 hosts known after 127 s here, 87 s on the real service)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas

CLUSTER = str(uuid.UUID(int=3 << 100))
IE = str(uuid.UUID(int=4 << 100))
HOSTS = 3


def _id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def _inventory(i: int) -> str:
    return json.dumps({"hostname": f"node-{i}", "interfaces": [
        {"name": "eth0", "type": "physical", "mac_address": f"02:00:00:00:01:{i:02x}",
         "ipv4_addresses": [f"10.0.0.{10 + i}/24"], "ipv6_addresses": []}]})


def _report(me: int) -> str:
    """Host ``me`` reaches every other host."""
    return json.dumps({"remote_hosts": [
        {"host_id": _id(i), "l2_connectivity": [
            {"outgoing_nic": "eth0", "remote_ip_address": f"10.0.0.{10 + i}", "successful": True,
             "remote_mac": f"02:00:00:00:01:{i:02x}"}]}
        for i in range(HOSTS) if i != me]})


def _majority(svc: ReferenceService, i: int) -> str:
    """The stored verdict (peek_host: reading it evaluates nothing)."""
    host = svc.store.peek_host(IE, _id(i)) or {}
    results = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
    return str(results["belongs-to-majority-group"]["status"])


def _connectivity(svc: ReferenceService, i: int) -> None:
    svc.post_reply(IE, _id(i), {"step_id": "connectivity-check-1", "step_type": "connectivity-check",
                                "output": _report(i)})


def test_a_host_is_judged_again_when_its_peers_report_after_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    load_areas()
    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings(test_mode=True))
    try:
        store.save_cluster({"id": CLUSTER, "kind": "Cluster", "name": "peers", "base_dns_domain": "example.com",
                            "status": "insufficient", "control_plane_count": 3,
                            "machine_networks": [{"cidr": "10.0.0.0/24"}]})
        store.save_infra_env({"id": IE, "kind": "InfraEnv", "name": "ie", "cluster_id": CLUSTER})
        for i in range(HOSTS):
            svc.register_host(IE, _id(i), None)
            svc.post_reply(IE, _id(i), {"step_id": f"inventory-{i}", "step_type": "inventory",
                                        "output": _inventory(i)})
        _connectivity(svc, 0)  # the first host's round of replies comes before its peers' have
        assert _majority(svc, 0) != "success"
        _connectivity(svc, 1)
        _connectivity(svc, 2)
        assert _majority(svc, 2) == "success"  # judged within its own reply
        assert _majority(svc, 0) != "success"  # not yet: nothing of its own came since
        asyncio.run(svc.settler.tick())  # the monitor's pass
        assert [_majority(svc, i) for i in range(HOSTS)] == ["success"] * HOSTS
        # nothing moved since: the next pass evaluates nobody
        before = {i: (store.peek_host(IE, _id(i)) or {}).get("validations_info") for i in range(HOSTS)}
        evaluated: list[str] = []
        original = svc.settler.evaluate

        def spy(host: dict[str, Any], durable: bool = True) -> dict[str, Any]:
            evaluated.append(host["id"])
            return original(host, durable)

        monkeypatch.setattr(svc.settler, "evaluate", spy)
        asyncio.run(svc.settler.tick())
        assert evaluated == []
        assert {i: (store.peek_host(IE, _id(i)) or {}).get("validations_info") for i in range(HOSTS)} == before
    finally:
        store.close()
