"""The service's background tasks, as the real service's monitors: every MONITOR_SECONDS the settler's pass
(``Settler.tick``: hosts that stopped polling become disconnected without anybody asking, big clusters' majority
groups, every cluster's status and IP collision report) and the check-ins kept in memory written (every
PERSIST_SECONDS); every quarter of SETTLE_SECONDS the big clusters' dirty hosts evaluated (``Settler.settle``).

They run on the event loop, between requests, so they see and change the documents exactly as a request does.
What they do is the settler's: this module only schedules it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reference_service.orchestrator import ReferenceService
from reference_service.settler import MONITOR_SECONDS, SETTLE_SECONDS

log = logging.getLogger("reference_service")
#: How often the check-ins kept in memory are written (each write is the whole host document).
PERSIST_SECONDS = 60.0


async def settle(service: ReferenceService, period: float = SETTLE_SECONDS / 2) -> None:
    """Evaluates the big clusters' hosts that replies changed, one at a time so that requests are served
    between them."""
    while True:
        await asyncio.sleep(period)
        try:
            while service.settler.settle():
                await asyncio.sleep(0)
        except Exception:
            log.exception("evaluating the hosts replies changed failed")


async def run(service: ReferenceService, interval: float = MONITOR_SECONDS) -> None:
    persisted = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        started = time.monotonic()
        try:
            await service.settler.tick()
            if started - persisted >= PERSIST_SECONDS:  # the check-ins kept in memory (a restart loses
                service.store.persist()  # at most this much of them: less than DISCONNECTION_TIMEOUT)
                persisted = started
        except Exception:  # the monitor must outlive a bug in one rule
            log.exception("the monitor's tick failed")
        log.debug("monitor tick: %.1f ms", (time.monotonic() - started) * 1000)
