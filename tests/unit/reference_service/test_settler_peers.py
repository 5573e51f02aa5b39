"""A small cluster's host is judged again when its peers' reports change what it is judged by, without waiting
for its own next poll: the real service's host monitor re-evaluates every host every 8 s, so a host whose peers
answered their connectivity checks after it did is known within seconds there; here it waited a poll interval
(60 s) more (docs/real-service.md: 3 hosts known after 127 s here, 87 s on the real service)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reference_service.orchestrator import ReferenceService
from tests.support.small_cluster import IE, host_id, majority, register, report, small_cluster
from tests.support.spies import noted_calls

HOSTS = 3


def _majority(svc: ReferenceService, i: int) -> str:
    """The stored verdict (peek_host: reading it evaluates nothing)."""
    return majority(svc.store.peek_host(IE, host_id(i)) or {})


def _connectivity(svc: ReferenceService, i: int) -> None:
    """Host ``i`` reaches every other host."""
    svc.post_reply(IE, host_id(i), {"step_id": "connectivity-check-1", "step_type": "connectivity-check",
                                    "output": report(i, HOSTS)})


def test_a_host_is_judged_again_when_its_peers_report_after_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with small_cluster(tmp_path, "peers") as svc:
        register(svc, HOSTS)
        _connectivity(svc, 0)  # the first host's round of replies comes before its peers' have
        assert _majority(svc, 0) != "success"
        _connectivity(svc, 1)
        _connectivity(svc, 2)
        assert _majority(svc, 2) == "success"  # judged within its own reply
        assert _majority(svc, 0) != "success"  # not yet: nothing of its own came since
        asyncio.run(svc.settler.tick())  # the monitor's pass
        assert [_majority(svc, i) for i in range(HOSTS)] == ["success"] * HOSTS
        # nothing moved since: the next pass evaluates nobody
        store = svc.store
        before = {i: (store.peek_host(IE, host_id(i)) or {}).get("validations_info") for i in range(HOSTS)}
        evaluated = noted_calls(monkeypatch, svc.settler, "evaluate", lambda host, *_a, **_k: host["id"])
        asyncio.run(svc.settler.tick())
        assert evaluated == []
        assert {i: (store.peek_host(IE, host_id(i)) or {}).get("validations_info") for i in range(HOSTS)} == before
