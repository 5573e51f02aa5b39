"""The changes the API and the console share: checked before anything is changed, refused with the API's codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import ServiceRefusal
from reference_service.http import changes
from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas
from rules.user_checks import SAMPLE_PULL_SECRET


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[ReferenceService]:
    load_areas()
    store = Store(tmp_path / "db")
    try:
        yield ReferenceService(store, Settings())
    finally:
        store.close()


def _cluster(svc: ReferenceService, status: str = "insufficient") -> str:
    cid = str(uuid.uuid4())
    svc.store.save_cluster({"id": cid, "kind": "Cluster", "name": "c", "base_dns_domain": "example.com",
                            "status": status, "control_plane_count": 3, "openshift_version": "4.18",
                            "machine_networks": [{"cidr": "10.0.0.0/24"}]})
    return cid


def test_a_bad_hostname_changes_nothing_else(svc: ReferenceService) -> None:
    cid = _cluster(svc)
    ie, hid = str(uuid.uuid4()), str(uuid.uuid4())
    svc.store.save_infra_env({"id": ie, "kind": "InfraEnv", "name": "ie", "cluster_id": cid})
    svc.register_host(ie, hid, None)
    with pytest.raises(ServiceRefusal) as refused:
        changes.update_host(svc, ie, hid, {"host_role": "master", "host_name": "Not A Name!"})
    assert refused.value.status == 400
    assert svc.require_host(ie, hid).get("role") != "master"
    with pytest.raises(ServiceRefusal) as refused:
        changes.update_host(svc, ie, hid, {"host_role": "captain"})  # not in the spec's enum
    assert refused.value.status == 400
    assert changes.update_host(svc, ie, hid, {"host_role": "worker", "host_name": "w-0"})["role"] == "worker"
    assert svc.require_host(ie, hid)["requested_hostname"] == "w-0"


def _discovered(svc: ReferenceService, cid: str, address: str) -> None:
    """A host of the cluster whose inventory has one interface with ``address``."""
    ie, hid = str(uuid.uuid4()), str(uuid.uuid4())
    svc.store.save_infra_env({"id": ie, "kind": "InfraEnv", "name": "ie", "cluster_id": cid})
    host = svc.register_host(ie, hid, None)
    host["inventory"] = json.dumps({"interfaces": [{"name": "eth0", "ipv4_addresses": [address]}]})
    svc.store.save_host(host)


def test_cluster_updates_are_checked_and_refused_after_install(svc: ReferenceService) -> None:
    cid = _cluster(svc)
    with pytest.raises(ServiceRefusal) as refused:
        changes.update_cluster(svc, cid, {"api_vips": [{"ip": "10.9.0.5"}]})
    assert refused.value.status == 400 and "does not belong to machine-network-cidr" in refused.value.reason
    with pytest.raises(ServiceRefusal) as refused:  # no host has reported the VIP's network yet
        changes.update_cluster(svc, cid, {"api_vips": [{"ip": "10.0.0.5"}]})
    assert refused.value.reason == "Calculate machine network CIDR: No suitable matching CIDR found for VIP 10.0.0.5"
    _discovered(svc, cid, "10.0.0.7/24")
    changes.update_cluster(svc, cid, {"api_vips": [{"ip": "10.0.0.5"}], "pull_secret": SAMPLE_PULL_SECRET})
    stored = svc.store.get_cluster(cid) or {}
    assert stored["api_vips"][0]["ip"] == "10.0.0.5" and stored["api_vips"][0]["cluster_id"] == cid
    assert [n["cidr"] for n in stored["machine_networks"]] == ["10.0.0.0/24"]
    installed = _cluster(svc, "installed")
    with pytest.raises(ServiceRefusal) as refused:
        changes.update_cluster(svc, installed, {"api_vips": [{"ip": "10.0.0.5"}]})
    assert refused.value.status == 409
