"""An in-process service with one cluster evaluated as a big one (``EAGER_LIMIT`` lowered to 3), for tests of
what the service does at scale without registering a thousand hosts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_service import monitor, orchestrator
from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas


@contextlib.contextmanager
def big_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                hosts: int) -> Iterator[tuple[ReferenceService, str, list[str]]]:
    """(the service, the infra-env id, the registered hosts' ids); machine network 10.0.0.0/24."""
    monkeypatch.setattr(orchestrator, "EAGER_LIMIT", 3)
    monkeypatch.setattr(monitor, "EAGER_LIMIT", 3)
    load_areas()
    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings())
    cid, ie = str(uuid.uuid4()), str(uuid.uuid4())
    store.save_cluster({"id": cid, "kind": "Cluster", "name": "big", "base_dns_domain": "example.com",
                        "status": "insufficient", "control_plane_count": 3,
                        "machine_networks": [{"cidr": "10.0.0.0/24"}]})
    store.save_infra_env({"id": ie, "kind": "InfraEnv", "name": "ie", "cluster_id": cid})
    ids = [str(uuid.uuid4()) for _ in range(hosts)]
    for host_id in ids:
        svc.register_host(ie, host_id, None)
    try:
        yield svc, ie, ids
    finally:
        store.close()
