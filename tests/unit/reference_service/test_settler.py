"""One majority rule at every size: with two equal cliques, ``belongs-to-majority-group`` says the same of
each host at 14 hosts (a cluster evaluated within each request) and at 52 (one evaluated between requests,
its groups computed by the monitor's pass). Before the cluster model, 14 hosts were judged per host by
"more than half" and 52 by the monitor's digest, and a host's verdict changed when the 51st host joined."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from reference_service.orchestrator import ReferenceService
from reference_service.settler import AT_ONCE_HOSTS
from tests.support.small_cluster import CLUSTER, IE, host_id, majority, register, report, small_cluster


def same_clique(me: int) -> Callable[[int], bool]:
    """Whom host ``me`` reaches: the hosts of its own clique (its parity), and none of the other's."""
    return lambda peer: peer % 2 == me % 2


def verdicts(svc: ReferenceService, hosts: int) -> dict[int, str]:
    return {i: majority(svc.refresh_host(svc.require_host(IE, host_id(i)))) for i in range(hosts)}


def grow(svc: ReferenceService, hosts: int) -> None:
    """``hosts`` hosts, each with an inventory and a fresh report of its clique (the hosts of its parity)."""
    register(svc, hosts)
    for i in range(hosts):
        svc.post_reply(IE, host_id(i), {"step_id": f"connectivity-check-{hosts}", "step_type": "connectivity-check",
                                        "output": report(i, hosts, same_clique(i))})
    while svc.settler.settle(older_than=0):
        pass
    asyncio.run(svc.settler.tick())  # a big cluster's groups are the monitor's


def test_two_equal_cliques_get_the_same_verdicts_at_14_and_at_52_hosts(tmp_path: Path) -> None:
    with small_cluster(tmp_path, "cliques") as svc:
        grow(svc, 14)
        small = verdicts(svc, 14)
        # the clique holding the first host in id order is the group, as in the real service
        assert small == {i: "success" if i % 2 == 0 else "failure" for i in range(14)}
        grow(svc, 52)
        assert svc.store.cluster_size(CLUSTER) > AT_ONCE_HOSTS
        big = verdicts(svc, 52)
        assert {i: big[i] for i in range(14)} == small
        assert big == {i: "success" if i % 2 == 0 else "failure" for i in range(52)}
