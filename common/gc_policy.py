"""The garbage collector's schedule for the service and the swarm, which hold a thousand hosts' documents.

With CPython's default thresholds (700, 10, 10) a service with 1,000 hosts ran a full collection every 0.2 to
0.5 s during discovery, each 150 to 200 ms long, with the event loop stopped: 8 % of its time, and nothing
collected, since documents form no reference cycles. What survives start-up is frozen (never scanned again)
and the young generation is collected every 50,000 allocations rather than 700: cycles (an exception's
traceback in a task) are still found, in the young generations, where they are.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
