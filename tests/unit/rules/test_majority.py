"""The majority group by the real service's rule (``rules/majority.py``), on link masks and on reports:
the cases of the real service's own tests (``connectivity_groups_test.go``), ties, and a big cluster."""

from __future__ import annotations

import ipaddress
import random

from rules.majority import (
    bits,
    majority_group,
    mutual_links,
    mutual_links_since,
    reached,
)


def mask(*members: int) -> int:
    return sum(1 << m for m in members)


def cliques(*groups: tuple[int, ...]) -> dict[int, int]:
    """Reach masks of hosts linked within each group (each host reaches every other of its group)."""
    reach = {}
    for group in groups:
        for me in group:
            reach[me] = mask(*group)
    return reach


def group_of(reach: dict[int, int]) -> set[int]:
    return set(bits(majority_group(mutual_links(reach), rank=lambda i: i)))


def test_the_real_services_cases() -> None:
    assert group_of({}) == set()  # no reports
    assert group_of({0: mask(0, 1, 2)}) == set()  # one host's report: no link is both ways
    assert group_of(cliques((0, 1, 2))) == {0, 1, 2}
    assert group_of(cliques((0, 1, 2), (3, 4, 5, 6))) == {3, 4, 5, 6}  # the largest, not the first
    assert group_of(cliques((0, 1))) == set()  # fewer than three
    one_way = cliques((0, 1, 2, 3))
    one_way[0] = mask(0, 1, 2)  # 0 no longer reports reaching 3
    assert group_of(one_way) == {0, 1, 2}  # {0,1,2} and {1,2,3} tie: the one first in id order


def test_two_equal_cliques_the_one_holding_the_first_id_whatever_the_size() -> None:
    for size in (7, 26, 500):
        reach = cliques(tuple(range(0, 2 * size, 2)), tuple(range(1, 2 * size, 2)))
        assert group_of(reach) == set(range(0, 2 * size, 2))
        reversed_rank = majority_group(mutual_links(reach), rank=lambda i: -i)
        assert set(bits(reversed_rank)) == set(range(1, 2 * size, 2))


def test_a_cut_host_and_hosts_seen_one_way_are_left_out_at_300_hosts() -> None:
    n, cut, one_way = 300, {0, 17, 150, 299}, {42, 200}
    everyone = mask(*range(n))
    reach = {a: (0 if a in cut else everyone) & ~mask(*cut, *one_way) | (1 << a) for a in range(n)}
    assert group_of(reach) == set(range(n)) - cut - one_way


def test_a_larger_group_beats_a_better_attended_one() -> None:
    """A host linked with everyone, and two groups it bridges: the full mesh found is the biggest one."""
    reach = cliques((0, 1, 2, 3, 4), (5, 6, 7))
    for me in (5, 6, 7):
        reach[me] |= mask(8)
    reach[8] = mask(5, 6, 7, 8)
    assert group_of(reach) == {0, 1, 2, 3, 4}


def test_mutual_links_updated_row_by_row_equal_those_computed_afresh() -> None:
    rng = random.Random(5)
    n = 60
    reach = {a: sum(1 << b for b in range(n) if rng.random() < 0.9) for a in range(n)}
    mutual = mutual_links(reach)
    for _ in range(300):
        new = dict(reach)
        for a in rng.sample(range(n), rng.choice([1, 2, 3])):
            if rng.random() < 0.1:
                new.pop(a, None)
            else:
                new[a] = sum(1 << b for b in range(n) if rng.random() < 0.9)
        mutual = mutual_links_since(reach, mutual, new)
        assert mutual == mutual_links(new)
        reach = new


def test_a_report_reaches_a_peer_by_l2_and_for_ipv6_by_l3_too() -> None:
    v4, v6 = ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")
    report = {"remote_hosts": [
        {"host_id": "a", "l2_connectivity": [{"remote_ip_address": "10.0.0.5", "successful": True}]},
        {"host_id": "b", "l3_connectivity": [{"remote_ip_address": "10.0.0.6", "successful": True},
                                             {"remote_ip_address": "fd00::6", "successful": True}]},
        {"host_id": "c", "l2_connectivity": [{"remote_ip_address": "10.9.0.7", "successful": True},
                                             {"remote_ip_address": "10.0.0.7"}]},
        {"host_id": "d", "l2_connectivity": []},  # a first entry that reaches nothing ...
        {"host_id": "d", "l2_connectivity": [{"remote_ip_address": "10.0.0.8", "successful": True}]},  # ... and one
    ]}
    assert reached(report, [v4, v6]) == {"a": 0b01, "b": 0b10, "c": 0, "d": 0b01}
    assert reached("not a report", [v4]) == {}
