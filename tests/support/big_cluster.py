"""An in-process service with one cluster big enough to be evaluated between requests (more hosts than
``settler.AT_ONCE_HOSTS``), for tests of what the service does at scale without a thousand hosts: the
cluster holds ``AT_ONCE_HOSTS`` quiet hosts (registered, never reporting) besides the ones a test uses."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.settler import AT_ONCE_HOSTS
from reference_service.store.database import Store
from rules import load_areas


@contextlib.contextmanager
def big_cluster(tmp_path: Path, hosts: int) -> Iterator[tuple[ReferenceService, str, list[str]]]:
    """(the service, the infra-env id, the ids of the ``hosts`` hosts a test uses); machine network
    10.0.0.0/24."""
    load_areas()
    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings())
    cid, ie = str(uuid.uuid4()), str(uuid.uuid4())
    store.save_cluster({"id": cid, "kind": "Cluster", "name": "big", "base_dns_domain": "example.com",
                        "status": "insufficient", "control_plane_count": 3,
                        "machine_networks": [{"cidr": "10.0.0.0/24"}]})
    store.save_infra_env({"id": ie, "kind": "InfraEnv", "name": "ie", "cluster_id": cid})
    for _ in range(AT_ONCE_HOSTS):
        svc.register_host(ie, str(uuid.uuid4()), None)
    ids = [str(uuid.uuid4()) for _ in range(hosts)]
    for host_id in ids:
        svc.register_host(ie, host_id, None)
    try:
        yield svc, ie, ids
    finally:
        store.close()
