"""The service's monitor, as the real service's host and cluster monitors: every MONITOR_SECONDS it finds the
hosts that stopped polling (so they become disconnected without anybody asking), evaluates the big clusters
as a whole (their IP collision report and status, which their polls and replies no longer recompute: see
``orchestrator.EAGER_LIMIT``) and writes the check-ins kept in memory (every PERSIST_SECONDS).

It runs on the event loop, between requests, so it sees and changes the documents exactly as a request does.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reference_service.orchestrator import EAGER_LIMIT, MONITOR_SECONDS, SETTLE_SECONDS, ReferenceService
from rules import states
from rules.cluster_digest import DigestMemo, digest

log = logging.getLogger("reference_service")
#: How often the check-ins kept in memory are written (each write is the whole host document).
PERSIST_SECONDS = 60.0


def tick(service: ReferenceService, now: float | None = None) -> None:
    now = time.time() if now is None else now
    store = service.store
    for shared in store.peers():
        status = str(shared.get("status", ""))
        if status.startswith("disconnected") or "_checked_in" not in shared:
            continue
        if now - float(shared["_checked_in"]) >= states.DISCONNECTION_TIMEOUT:
            host = store.get_host(shared["infra_env_id"], shared["id"])
            if host is not None:
                service.refresh_host(host)
    for cluster in store.list_cluster_ids():
        if store.cluster_size(cluster) > EAGER_LIMIT:
            service.refresh_cluster(cluster, full=True)


async def digest_big_clusters(service: ReferenceService, memos: dict[str, DigestMemo]) -> None:
    """The cluster digests of the big clusters, computed in a worker thread: at 1,000 hosts a digest parses
    every new connectivity report (about 250 KB each), which would stall the requests for a second. The
    thread reads a snapshot of the stored documents, which are replaced on change, never modified."""
    store = service.store
    big = [c for c in store.list_cluster_ids() if store.cluster_size(c) > EAGER_LIMIT]
    for cluster_id in list(memos):
        if cluster_id not in big:
            del memos[cluster_id]
            service.digests.pop(cluster_id, None)
    for cluster_id in big:
        seen = store.peek_cluster(cluster_id)  # replaced, never changed, on every save: identity is its version
        memo = memos.setdefault(cluster_id, DigestMemo())
        new = await asyncio.to_thread(digest, store.get_cluster(cluster_id),
                                      list(store.peers(cluster_id=cluster_id)), memo)
        old = service.digests.get(cluster_id)
        service.digests[cluster_id] = new
        if old != new or seen is not service.seen_clusters.get(cluster_id):
            service.cluster_versions[cluster_id] = service.cluster_versions.get(cluster_id, 0) + 1
        service.seen_clusters[cluster_id] = seen


async def settle(service: ReferenceService, period: float = SETTLE_SECONDS / 2) -> None:
    """Evaluates the big clusters' hosts that replies changed (``ReferenceService.settle``), a few at a time
    so that requests are served between them."""
    while True:
        await asyncio.sleep(period)
        try:
            while service.settle():
                await asyncio.sleep(0)
        except Exception:
            log.exception("evaluating the hosts replies changed failed")


async def run(service: ReferenceService, interval: float = MONITOR_SECONDS) -> None:
    memos: dict[str, DigestMemo] = {}
    persisted = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        started = time.monotonic()
        try:
            await digest_big_clusters(service, memos)
            tick(service)
            if started - persisted >= PERSIST_SECONDS:  # the check-ins kept in memory (a restart loses
                service.store.persist()  # at most this much of them: less than DISCONNECTION_TIMEOUT)
                persisted = started
        except Exception:  # the monitor must outlive a bug in one rule
            log.exception("the monitor's tick failed")
        log.debug("monitor tick: %.1f ms", (time.monotonic() - started) * 1000)
