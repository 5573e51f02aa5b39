"""The reply worker process: it collects garbage on the service's schedule, since a 1,000-peer report decoded
under CPython's default one spent a fifth of its check in collections."""

from __future__ import annotations

import gc

from reference_service import gc_policy, reply_workers


def test_the_worker_collects_on_the_services_schedule() -> None:
    try:
        pool = reply_workers._executor()
        assert pool.submit(gc.get_threshold).result(timeout=60) == gc_policy.THRESHOLDS
        assert pool.submit(gc.get_freeze_count).result(timeout=60) > 0  # what start-up made is never scanned
    finally:
        reply_workers.shutdown()
