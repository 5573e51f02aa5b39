"""The cluster digest gives the cluster-wide validations the same outcomes as computing them per host from
every host's documents (up to 12 hosts, where the per-host rule is exact), never re-parses an unchanged
report, and at 300 hosts still finds the majority and leaves cut-off hosts out."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rules import cluster_digest
from rules.cluster_digest import ClusterDigest, DigestMemo, digest, in_majority_group
from rules.documents import HostView
from rules.registry import VALIDATIONS

#: The validations that read the cluster: with a digest they must say exactly what they say without one.
CLUSTER_WIDE = ("hostname-unique", "belongs-to-majority-group", "sufficient-network-latency-requirement-for-role",
                "sufficient-packet-loss-requirement-for-role", "mtu-valid")
V4, V6 = "10.0.0.0/24", "fd00::/64"


def both_paths(view: HostView, memo: DigestMemo) -> dict[str, Any]:
    """Each cluster-wide outcome without and with a digest (from a shared memo and from a fresh one)."""
    out = {}
    shared = digest(view.cluster, view.hosts, memo)
    fresh = digest(view.cluster, view.hosts, DigestMemo())
    assert shared == fresh
    for vid in CLUSTER_WIDE:
        plain = VALIDATIONS[vid].func(view)
        assert VALIDATIONS[vid].func(dataclasses.replace(view, digest=shared)) == plain, (vid, view.host["id"])
        out[vid] = plain
    return out


# -- generated clusters --------------------------------------------------------------------------------------------
def _host(rng: random.Random, i: int) -> dict[str, Any]:
    host: dict[str, Any] = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "status": "known",
                            "role": rng.choice(["master", "master", "worker", "auto-assign"])}
    if host["role"] == "auto-assign" and rng.random() < 0.7:
        host["suggested_role"] = rng.choice(["master", "worker"])
    if rng.random() < 0.1:
        host["requested_hostname"] = rng.choice(["alpha", "beta", f"req-{i}"])
    if rng.random() < 0.08:
        return host  # not inventoried yet
    inv: dict[str, Any] = {
        "hostname": rng.choice(["alpha", "beta", f"node-{i}", f"node-{i}", f"node-{i}"]),
        "interfaces": [{"name": "eth0", "type": "physical", "mac_address": f"02:00:00:00:00:{i:02x}",
                        "ipv4_addresses": [f"10.0.0.{10 + i}/24"], "ipv6_addresses": [f"fd00::{10 + i:x}/64"]}],
    }
    if rng.random() < 0.9:
        inv.update(cpu={"count": 8}, memory={"physical_bytes": 32 << 30}, disks=[{"id": "d", "size_bytes": 1 << 40}])
    host["inventory"] = json.dumps(inv)
    return host


def _links(rng: random.Random, n: int) -> list[list[bool]]:
    """reach[a][b]: does a's report reach b. Full meshes, partitions, one cut host seen by some, random."""
    kind = rng.choice(["full", "partition", "cut", "random", "sparse"])
    if kind == "full":
        return [[True] * n for _ in range(n)]
    if kind == "partition":
        side = [rng.random() < 0.5 for _ in range(n)]
        return [[side[a] == side[b] for b in range(n)] for a in range(n)]
    if kind == "cut":  # reports being refreshed: some peers still see the cut host, it sees everyone
        cut = rng.randrange(n)
        fresh = {b for b in range(n) if rng.random() < 0.5}
        return [[not (a in fresh and b == cut) for b in range(n)] for a in range(n)]
    p = 0.85 if kind == "random" else 0.5
    return [[rng.random() < p for _ in range(n)] for _ in range(n)]


def _report(rng: random.Random, me: int, hosts: list[dict[str, Any]], l2: list[list[bool]],
            l3: list[list[bool]]) -> str | None:
    if rng.random() < 0.07:
        return rng.choice([None, "", "{not json"])
    remote_hosts: list[dict[str, Any]] = []
    for b, other in enumerate(hosts):
        if b == me or rng.random() < 0.03:
            continue
        ip4, ip6 = f"10.0.0.{10 + b}", f"fd00::{10 + b:x}"
        ok2, ok3 = l2[me][b], l3[me][b]
        remote_hosts.append({
            "host_id": other["id"],
            "l2_connectivity": [{"remote_ip_address": ip4, "remote_mac": "x", **({"successful": True} if ok2 else {})},
                                {"remote_ip_address": "bogus", "successful": True}],
            "l3_connectivity": [{"remote_ip_address": ip, "average_rtt_ms": rng.choice([0.3, 150.0, 1200.0]),
                                 "packet_loss_percentage": rng.choice([0, 0, 5, 20]),
                                 **({"successful": True} if ok3 else {})} for ip in (ip4, ip6)],
            "mtu_report": [{"outgoing_nic": "eth0", "remote_ip_address": ip4,
                            **({"mtu_successful": True} if rng.random() < 0.9 else {})}],
        })
        if rng.random() < 0.02:  # a later, different entry for the same peer: only the first counts
            remote_hosts.append({**remote_hosts[-1], "l2_connectivity": []})
    if rng.random() < 0.1:
        remote_hosts.append({"host_id": str(uuid.uuid4()), "l2_connectivity": [
            {"remote_ip_address": "10.0.0.99", "successful": True}]})
    return json.dumps({"remote_hosts": remote_hosts})


def generated_clusters(count: int, seed: int = 12) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    rng = random.Random(seed)
    for c in range(count):
        n = rng.choice([1, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12])
        hosts = [_host(rng, i) for i in range(n)]
        l2 = _links(rng, n)
        l3 = l2 if rng.random() < 0.5 else _links(rng, n)
        for i, h in enumerate(hosts):
            if (text := _report(rng, i, hosts, l2, l3)) is not None:
                h["connectivity"] = text
        networks = rng.choice([[V4], [V6], [V4, V6], [], ["192.168.7.0/24"], [V4, "192.168.7.0/24"]])
        cluster: dict[str, Any] = {"id": f"c{c}", "name": "c", "base_dns_domain": "example.com",
                                   "machine_networks": [{"cidr": x} for x in networks]}
        if rng.random() < 0.1:
            cluster = {**cluster, "machine_networks": [], "machine_network_cidr": V4}
        if rng.random() < 0.1:
            cluster["user_managed_networking"] = True
        yield cluster, hosts


def test_generated_clusters_have_the_same_outcomes_with_and_without_the_digest() -> None:
    memo = DigestMemo()
    seen: dict[str, set[Any]] = {vid: set() for vid in CLUSTER_WIDE}
    for cluster, hosts in generated_clusters(500):
        for host in hosts:
            view = HostView(host=host, infra_env={}, cluster=cluster, hosts=hosts)
            for vid, result in both_paths(view, memo).items():
                seen[vid].add(result if result is None else result[0])
    # The generator reaches every outcome, so the comparison covered them all.
    assert {"success", "failure", "pending"} <= seen["belongs-to-majority-group"]
    assert {"success", "failure", "pending"} <= seen["hostname-unique"]
    for vid in CLUSTER_WIDE[2:]:
        assert {"success", "failure"} <= seen[vid], vid
    assert "pending" in seen["mtu-valid"]


def test_the_existing_fixture_tests_documents_give_the_same_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every view the network and inventory tests evaluate is also evaluated with a digest, and must agree."""
    import tests.e2e.test_inventory_service as inventory_tests
    import tests.unit.rules.test_network as net_tests

    memo, calls = DigestMemo(), []
    for vid in CLUSTER_WIDE:
        original = VALIDATIONS[vid].func

        def checked(view: HostView, original: Any = original, vid: str = vid) -> Any:
            result = original(view)
            if view.digest is None:
                calls.append(vid)
                assert original(dataclasses.replace(view, digest=digest(view.cluster, view.hosts, memo))) == result
                assert original(dataclasses.replace(
                    view, digest=digest(view.cluster, view.hosts, DigestMemo()))) == result
            return result

        monkeypatch.setitem(VALIDATIONS, vid, dataclasses.replace(VALIDATIONS[vid], func=checked))
    net_tests.test_majority_group()
    net_tests.test_majority_group_while_reports_are_refreshed()
    for args in [("master", 99.0, 0.0, True, True), ("master", 101.0, 0.0, False, True),
                 ("master", 1.0, 10.0, True, False), ("worker", 1001.0, 11.0, False, False)]:
        net_tests.test_latency_and_packet_loss_thresholds_per_role(*args)
    net_tests.test_latency_is_only_checked_between_hosts_of_the_same_role()
    net_tests.test_mtu_valid_is_not_blocking()
    inventory_tests.test_hostname_unique()
    inventory_tests.test_without_inventory()
    inventory_tests.test_sufficient_host()
    assert set(calls) == set(CLUSTER_WIDE)


# -- the memo ------------------------------------------------------------------------------------------------------
def _mesh(n: int, cut: frozenset[int] = frozenset(), one_way: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """``n`` hosts in 10.0.0.0/16, all linked except the ``cut`` ones (no link at all) and ``one_way`` ones
    (they reach everyone, nobody reports reaching them)."""
    hosts = [{"id": f"00000000-0000-0000-0000-{i:012d}", "role": "master",
              "inventory": json.dumps({"hostname": f"h{i}", "interfaces": []})} for i in range(n)]
    ips = [str(ipaddress.ip_address("10.0.0.10") + i) for i in range(n)]
    for a, host in enumerate(hosts):
        remote = [{"host_id": hosts[b]["id"], "l2_connectivity": [
            {"remote_ip_address": ips[b], "successful": a not in cut and b not in cut and b not in one_way}]}
            for b in range(n) if b != a]
        host["connectivity"] = json.dumps({"remote_hosts": remote})
    return hosts


CLUSTER16 = {"id": "c", "machine_networks": [{"cidr": "10.0.0.0/16"}]}


def test_the_memo_parses_a_report_once_and_forgets_hosts_that_left() -> None:
    memo, hosts = DigestMemo(), _mesh(20)
    first = digest(CLUSTER16, hosts, memo)
    assert memo.parsed == 40 and len(memo) == 40  # 20 reports and 20 inventories
    copies = [{**h, "connectivity": "".join(list(h["connectivity"]))} for h in hosts]  # equal, new objects
    assert digest(CLUSTER16, copies, memo) == first and memo.parsed == 40
    changed = _mesh(20, cut=frozenset({3}))
    hosts[3]["connectivity"] = changed[3]["connectivity"]
    second = digest(CLUSTER16, hosts, memo)
    assert memo.parsed == 41
    assert second.majority["10.0.0.0/16"] == frozenset(h["id"] for h in hosts) - {hosts[3]["id"]}
    digest(CLUSTER16, hosts[:10], memo)
    assert len(memo) == 20 and memo.parsed == 41
    # A CIDR the digest has no group for is pending, as the real service's validator before its monitor ran.
    other = {**CLUSTER16, "machine_networks": [{"cidr": "10.9.0.0/16"}]}
    view = HostView(host=hosts[0], infra_env={}, cluster=other, hosts=hosts, digest=second)
    assert VALIDATIONS["belongs-to-majority-group"].func(view) == (
        "pending", "Machine Network CIDR or Connectivity Majority Groups missing")


def test_the_greedy_group_of_300_hosts_is_the_majority_without_the_cut_off_hosts() -> None:
    cut, one_way = frozenset({0, 17, 150, 299}), frozenset({42, 200})
    hosts = _mesh(300, cut=cut, one_way=one_way)
    result = digest(CLUSTER16, hosts, DigestMemo())
    assert isinstance(result, ClusterDigest)
    outside = {hosts[i]["id"] for i in cut | one_way}
    assert result.majority["10.0.0.0/16"] == frozenset(h["id"] for h in hosts) - outside
    for i in (0, 1, 42, 298):
        view = HostView(host=hosts[i], infra_env={}, cluster=CLUSTER16, hosts=hosts, digest=result)
        expected = "failure" if i in cut | one_way else "success"
        assert VALIDATIONS["belongs-to-majority-group"].func(view)[0] == expected  # type: ignore[index]
    # The per-host greedy rule agrees on these two (it is O(N^3), so only two hosts are checked).
    cidr = ipaddress.ip_network("10.0.0.0/16")
    assert in_majority_group(hosts[1]["id"], hosts, cidr) and not in_majority_group(hosts[0]["id"], hosts, cidr)


def test_a_cluster_split_in_two_halves_has_no_majority() -> None:
    hosts = _mesh(40)
    for a, host in enumerate(hosts):
        report = json.loads(host["connectivity"])
        for entry in report["remote_hosts"]:
            b = int(entry["host_id"][-12:])
            entry["l2_connectivity"][0]["successful"] = (a < 20) == (b < 20)
        host["connectivity"] = json.dumps(report)
    assert digest(CLUSTER16, hosts, DigestMemo()).majority["10.0.0.0/16"] == frozenset()


def test_mutual_links_updated_from_the_last_masks_equal_those_computed_afresh() -> None:
    """A few changed reports update the mutual-link masks row by row (``_mutual_since``); hosts appear,
    disappear and change what they reach, and the result is always what ``_mutual`` computes from scratch."""
    rng = random.Random(12)
    for _ in range(400):
        n = rng.randint(1, 40)
        reach = {i: rng.getrandbits(n + 3) for i in range(n) if rng.random() < 0.9}
        new = dict(reach)
        for _ in range(rng.randint(0, 6)):
            k = rng.randint(0, n + 2)
            if rng.random() < 0.6:
                new[k] = rng.getrandbits(n + 3)
            else:
                new.pop(k, None)
        assert cluster_digest._mutual_since(reach, cluster_digest._mutual(reach), new) == cluster_digest._mutual(new)
