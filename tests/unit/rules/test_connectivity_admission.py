"""connectivity-check issuance: every poll up to 150 hosts, then at most 150 admissions per cluster per sliding
minute in first-come order (the real service's queue), with a clock the test moves by hand."""

from __future__ import annotations

import json
from typing import Any

from rules.cluster_model import ClusterModel
from rules.connectivity_admission import MAX_PER_MINUTE, AdmissionQueue
from rules.documents import HostView
from rules.registry import Rulebook

RULES = Rulebook.of()  # every area's hooks, as the service's
STEP_ARGUMENTS = RULES.step_arguments


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0


class Admissions:
    """The queues of several clusters, on a clock the test moves."""

    def __init__(self, limit: int = MAX_PER_MINUTE, clock: Clock | None = None) -> None:
        self.limit, self.clock = limit, clock or Clock()
        self.queues: dict[str, AdmissionQueue] = {}

    def allowed(self, cluster_id: str, host_id: str, size: int) -> bool:
        queue = self.queues.setdefault(cluster_id, AdmissionQueue(self.limit))
        return queue.allowed(host_id, size, self.clock.now)


def test_small_clusters_get_it_on_every_poll() -> None:
    adm = Admissions(clock=Clock())
    assert all(adm.allowed("c", "h1", MAX_PER_MINUTE) for _ in range(1000))


def test_big_cluster_admits_150_per_sliding_minute_first_come_first_served() -> None:
    clock = Clock()
    adm = Admissions(clock=clock)
    size = 1000
    assert all(adm.allowed("c", f"h{i}", size) for i in range(MAX_PER_MINUTE))
    clock.now += 30
    # the window is full: everyone else waits, in the order they asked
    assert [adm.allowed("c", f"h{i}", size) for i in range(150, 160)] == [False] * 10
    assert not adm.allowed("c", "h0", size)  # an admitted host asking again waits too
    assert adm.allowed("other-cluster", "x", size)  # queues are per cluster
    clock.now += 31  # the first 150 admissions are now older than a minute
    assert adm.allowed("c", "h150", size) and adm.allowed("c", "late", size)


def test_with_few_free_slots_the_first_in_line_go_first() -> None:
    clock = Clock()
    adm = Admissions(limit=2, clock=clock)
    assert adm.allowed("c", "a", 10) and adm.allowed("c", "b", 10)
    assert not adm.allowed("c", "c", 10) and not adm.allowed("c", "d", 10) and not adm.allowed("c", "e", 10)
    clock.now += 61  # two slots free; waiting line: c, d, e
    assert not adm.allowed("c", "e", 10)  # third in line, two slots
    assert adm.allowed("c", "d", 10)  # second in line
    assert not adm.allowed("c", "e", 10)  # one slot left, c is still ahead of e
    assert adm.allowed("c", "c", 10)
    assert not adm.allowed("c", "e", 10)  # window full again


def test_polls_of_a_1000_host_swarm_carry_it_about_as_often_as_the_real_service() -> None:
    """1,000 hosts polling every 10 s for 42 s (4,200 polls): the real service sent 176 connectivity-checks."""
    clock = Clock()
    adm = Admissions(clock=clock)
    sent = 0
    for tick in range(42):
        for i in range(100):  # 100 polls a second
            host = (tick * 100 + i) % 1000
            sent += adm.allowed("c", f"h{host}", 1000)
        clock.now += 1
    assert sent == MAX_PER_MINUTE  # one window's worth in under a minute (the real run: 176 with its timing)


def _hosts(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        nic = {"name": "eth0", "type": "physical", "mac_address": f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}",
               "ipv4_addresses": [f"10.0.{i >> 8}.{i & 255}/16"], "ipv6_addresses": []}
        out.append({"id": f"00000000-0000-4000-8000-{i:012d}", "cluster_id": "c1", "status": "known",
                    "inventory": json.dumps({"interfaces": [nic]})})
    return out


def test_the_step_builder_follows_the_queue() -> None:
    """The builder asks the cluster's model (``view.model.admissions``) at the view's time."""
    clock, model = Clock(), ClusterModel()
    build = STEP_ARGUMENTS["connectivity-check"]

    def view(host: dict[str, Any], hosts: list[dict[str, Any]]) -> HostView:
        model.sync({"id": "c1"}, hosts)
        return HostView(host, {}, {"id": "c1"}, hosts, model=model, now=clock.now)

    small = _hosts(3)
    assert all(build(view(small[0], small)) for _ in range(5))
    big = _hosts(MAX_PER_MINUTE + 1)
    issued = [build(view(h, big)) is not None for h in big]
    assert issued.count(True) == MAX_PER_MINUTE and issued[-1] is False
    clock.now += 61
    granted = build(view(big[-1], big))  # first in line once the window has passed
    assert granted is not None and len(json.loads(granted[0])) == MAX_PER_MINUTE
