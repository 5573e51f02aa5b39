"""reference_service.monitor: the background tasks on the service's loop run the settler's passes on their
own, between requests: a big cluster's dirty hosts get evaluated and the monitor's tick computes its groups,
with nobody asking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from reference_service import monitor
from reference_service.orchestrator import ReferenceService
from tests.support.big_cluster import big_cluster


def _until(task: Callable[[], Coroutine[Any, Any, None]], done: Callable[[], bool], timeout: float = 10.0) -> bool:
    async def main() -> bool:
        running = asyncio.create_task(task())
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        running.cancel()
        return done()

    return asyncio.run(main())


def test_settle_evaluates_the_hosts_a_poll_left_dirty(tmp_path: Path) -> None:
    with big_cluster(tmp_path, 2) as (svc, ie, ids):
        svc.next_steps(ie, ids[0], None, None)
        assert ids[0] in svc.settler.dirty and ids[0] not in svc.settler.evaluated  # left for later
        assert _until(lambda: monitor.settle(svc, period=0.01), lambda: ids[0] in svc.settler.evaluated)
        assert ids[0] not in svc.settler.dirty


def test_the_tick_runs_on_its_interval(tmp_path: Path) -> None:
    with big_cluster(tmp_path, 2) as (svc, _ie, _ids):
        [cluster_id] = svc.store.list_cluster_ids()
        assert svc.settler.versions.get(cluster_id, 0) == 0

        def ticked(service: ReferenceService = svc) -> bool:
            return service.settler.versions.get(cluster_id, 0) >= 1  # the tick took the big cluster's groups

        assert _until(lambda: monitor.run(svc, interval=0.01), ticked)
