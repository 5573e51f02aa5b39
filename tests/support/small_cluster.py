"""An in-process reference service with one cluster of a few hosts on 10.0.0.0/24 (test mode), each host with an
inventory, and the connectivity reports they send of each other: the set-up of the settler's tests (the
majority group at 14 and 52 hosts, a host judged again when its peers report)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas

CLUSTER = str(uuid.UUID(int=1 << 100))
IE = str(uuid.UUID(int=2 << 100))


def host_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))  # in id order: host 0 comes first


def address(i: int) -> str:
    return f"10.0.0.{10 + i}"


def mac(i: int) -> str:
    return f"02:00:00:00:00:{i:02x}"


@contextlib.contextmanager
def small_cluster(tmp_path: Path, name: str) -> Iterator[ReferenceService]:
    """The service (its store closed at the end), with cluster ``CLUSTER`` (three control-plane nodes wanted)
    and its infra-env ``IE``; no host yet (``register``)."""
    load_areas()
    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings(test_mode=True))
    try:
        store.save_cluster({"id": CLUSTER, "kind": "Cluster", "name": name, "base_dns_domain": "example.com",
                            "status": "insufficient", "control_plane_count": 3,
                            "machine_networks": [{"cidr": "10.0.0.0/24"}]})
        store.save_infra_env({"id": IE, "kind": "InfraEnv", "name": "ie", "cluster_id": CLUSTER})
        yield svc
    finally:
        store.close()


def inventory(i: int) -> str:
    return json.dumps({"hostname": f"node-{i}", "interfaces": [
        {"name": "eth0", "type": "physical", "mac_address": mac(i),
         "ipv4_addresses": [f"{address(i)}/24"], "ipv6_addresses": []}]})


def register(svc: ReferenceService, hosts: int) -> None:
    """Hosts 0 to ``hosts - 1`` registered (again, for those that are), each with its inventory."""
    for i in range(hosts):
        svc.register_host(IE, host_id(i), None)
        svc.post_reply(IE, host_id(i), {"step_id": f"inventory-{i}", "step_type": "inventory",
                                        "output": inventory(i)})


def report(me: int, hosts: int, reaches: Callable[[int], bool] = lambda _i: True) -> str:
    """Host ``me``'s connectivity report of the other hosts: it reaches those ``reaches`` says it does."""
    return json.dumps({"remote_hosts": [
        {"host_id": host_id(i), "l2_connectivity": [
            {"outgoing_nic": "eth0", "remote_ip_address": address(i), "remote_mac": mac(i),
             **({"successful": True} if reaches(i) else {})}]}
        for i in range(hosts) if i != me]})


def majority(host: dict[str, Any]) -> str:
    """The status of the host's ``belongs-to-majority-group`` validation."""
    results = {v["id"]: v for vs in json.loads(host["validations_info"]).values() for v in vs}
    return str(results["belongs-to-majority-group"]["status"])
