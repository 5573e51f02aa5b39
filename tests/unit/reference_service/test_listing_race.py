"""A host listing is streamed, so other requests are served between its chunks: nothing it does while it is
sent may undo them. (It evaluated and saved each host's copy as the copy was sent, and a reply applied
meanwhile was lost: the host stayed ``discovering`` with its inventory in the replies table.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from starlette.requests import Request

from reference_service.http import user_routes
from reference_service.http.app import create_app
from reference_service.orchestrator import ReferenceService
from reference_service.settings import Settings
from reference_service.store.database import Store
from rules import load_areas

INVENTORY = {"hostname": "h0", "cpu": {"count": 4}, "memory": {"physical_bytes": 17179869184},
             "interfaces": [], "disks": []}


def test_a_reply_applied_while_a_listing_is_sent_is_kept(tmp_path: Path) -> None:
    load_areas()
    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings())
    app = create_app(svc)
    while not hasattr(app, "state"):  # the Starlette app inside the service's middlewares
        app = app.app
    ie = str(uuid.uuid4())
    store.save_infra_env({"id": ie, "kind": "InfraEnv", "name": "ie"})
    ids = [str(uuid.uuid4()) for _ in range(120)]  # more than one chunk of the listing
    for host_id in ids:
        svc.register_host(ie, host_id, None)

    async def scenario() -> list[bytes]:
        request = Request({"type": "http", "method": "GET", "app": app, "path_params": {"infra_env_id": ie},
                           "query_string": b"", "headers": []})
        response = await user_routes.list_hosts(request)
        chunks = []
        iterator = response.body_iterator.__aiter__()  # type: ignore[attr-defined]
        chunks.append(await iterator.__anext__())  # the listing has started
        reply = {"step_id": "inventory-1", "step_type": "inventory", "exit_code": 0,
                 "output": json.dumps(INVENTORY)}
        svc.apply_reply(ie, ids[-1], reply, svc.check_reply(reply))
        chunks.extend([chunk async for chunk in iterator])
        return chunks

    listed = json.loads(b"".join(asyncio.run(scenario())))
    assert [h["id"] for h in listed] == ids
    assert "hostname" in json.loads((store.peek_host(ie, ids[-1]) or {}).get("inventory") or "{}")
    store.close()
