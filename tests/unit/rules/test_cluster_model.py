"""The cluster model (``rules/cluster_model.py``): what it derives from the documents, that it derives it once,
that it forgets hosts that left, and that its version moves exactly when a cluster-wide fact changed."""

from __future__ import annotations

import ipaddress
import json
import random
from typing import Any

import pytest

from rules import cluster_model
from rules.cluster_model import ClusterModel
from rules.documents import HostView
from rules.registry import Rulebook

RULES = Rulebook.of()  # every area's hooks, as the service's
VALIDATIONS = RULES.validations

CLUSTER = {"id": "c", "machine_networks": [{"cidr": "10.0.0.0/16"}]}


def mesh(n: int, cut: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """``n`` hosts in 10.0.0.0/16, all linked but the ``cut`` ones."""
    hosts = [{"id": f"00000000-0000-0000-0000-{i:012d}", "role": "master",
              "inventory": json.dumps({"hostname": f"h{i}", "interfaces": []})} for i in range(n)]
    for a, host in enumerate(hosts):
        host["connectivity"] = json.dumps({"remote_hosts": [
            {"host_id": hosts[b]["id"], "l2_connectivity": [
                {"remote_ip_address": f"10.0.{b >> 8}.{b & 255}", "successful": a not in cut and b not in cut}]}
            for b in range(n) if b != a]})
    return hosts


def majority(model: ClusterModel, hosts: list[dict[str, Any]]) -> set[str]:
    return {h["id"] for h in hosts if model.in_majority(h["id"], cluster_model.machine_cidrs(CLUSTER)[0])}


def counted_decodes(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> list[Any]:
    """Every text ``decode`` is handed in ``modules`` (each module's own ``decode`` wrapped), as it is decoded."""
    decoded: list[Any] = []
    real = cluster_model.decode

    def counted(raw: Any) -> Any:
        decoded.append(raw)
        return real(raw)

    for module in modules:
        monkeypatch.setattr(module, "decode", counted)
    return decoded


def test_a_report_is_decoded_once_and_hosts_that_left_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = counted_decodes(monkeypatch, cluster_model)
    model, hosts = ClusterModel(), mesh(20)
    model.sync(CLUSTER, hosts)
    model.regroup()
    assert len(decoded) == 40 and majority(model, hosts) == {h["id"] for h in hosts}
    copies = [{**h, "connectivity": "".join(list(h["connectivity"]))} for h in hosts]  # equal, new objects
    model.sync(CLUSTER, copies)
    assert len(decoded) == 40 and model.groups_current
    hosts[3] = {**hosts[3], "connectivity": mesh(20, cut=frozenset({3}))[3]["connectivity"]}
    others = [{**h, "connectivity": mesh(20, cut=frozenset({3}))[i]["connectivity"]}
              for i, h in enumerate(hosts) if i != 3]
    model.sync(CLUSTER, [*others[:3], hosts[3], *others[3:]])
    model.regroup()
    assert majority(model, hosts) == {h["id"] for h in hosts} - {hosts[3]["id"]}
    model.sync(CLUSTER, others[:10])
    assert model.inventory_hosts == 10 and model.peer(hosts[15]["id"]) is None


def test_the_version_moves_when_a_cluster_wide_fact_changes_and_only_then() -> None:
    model, hosts = ClusterModel(), mesh(5)
    model.sync(CLUSTER, hosts)
    model.regroup()
    version = model.version
    model.sync(CLUSTER, [dict(h) for h in hosts])  # new documents, same facts
    model.regroup()
    assert model.version == version
    renamed = [{**hosts[0], "requested_hostname": "h1"}, *hosts[1:]]
    model.sync(CLUSTER, renamed)
    assert model.version == version + 1 and model.hostname_taken(hosts[1]["id"], "h1")
    cut = [{**h, "connectivity": c["connectivity"]} for h, c in zip(renamed, mesh(5, cut=frozenset({0})),
                                                                     strict=True)]
    model.sync(CLUSTER, cut)
    assert model.version == version + 1 and not model.groups_current  # groups not computed yet
    model.regroup()
    assert model.version == version + 2 and hosts[0]["id"] not in majority(model, hosts)


def test_facts_put_in_when_the_reply_came_are_what_the_rules_read() -> None:
    model, hosts = ClusterModel(), mesh(3)
    model.prime(hosts[0], "connectivity", {"_flagged": ("primed", "values")})
    from rules import network_validations
    assert model.fact(hosts[0], "connectivity", network_validations._flagged) == ("primed", "values")
    changed = {**hosts[0], "connectivity": mesh(3, cut=frozenset({1}))[0]["connectivity"]}
    assert model.fact(changed, "connectivity", network_validations._flagged) != ("primed", "values")


def test_hostname_counts_agree_with_reading_every_inventory() -> None:
    rng = random.Random(28)
    for _ in range(200):
        hosts = []
        for i in range(rng.randrange(1, 9)):
            host: dict[str, Any] = {"id": f"h{i}"}
            if rng.random() < 0.8:
                host["inventory"] = rng.choice([json.dumps({"hostname": rng.choice(["a", "b", f"n{i}"])}),
                                                "{not json", json.dumps([1])])
            if rng.random() < 0.2:
                host["requested_hostname"] = rng.choice(["a", "r"])
            hosts.append(host)
        model = ClusterModel()
        model.sync(CLUSTER, hosts)
        for host in hosts:
            names = {}
            for h in hosts:
                inv = cluster_model.decode(h.get("inventory"))
                if isinstance(inv, dict):
                    names[h["id"]] = str(h.get("requested_hostname") or inv.get("hostname") or "")
            for name in ("a", "b", "r", "n0"):
                brute = any(n == name for hid, n in names.items() if hid != host["id"])
                assert model.hostname_taken(host["id"], name) == brute


def test_a_network_without_computed_groups_is_pending_as_in_the_real_service() -> None:
    hosts = mesh(4)
    model = ClusterModel()
    model.sync(CLUSTER, hosts)  # no regroup: the monitor has not run
    view = HostView(host=hosts[0], infra_env={}, cluster=CLUSTER, hosts=hosts, model=model)
    assert VALIDATIONS["belongs-to-majority-group"].func(view) == (
        "pending", "Machine Network CIDR or Connectivity Majority Groups missing")
    model.regroup()
    assert VALIDATIONS["belongs-to-majority-group"].func(view) == (
        "success", "Host has connectivity to the majority of hosts in the cluster")


def _validate(view: HostView) -> list[Any]:
    return [v.func(view) for v in VALIDATIONS.values()]


def test_the_machine_networks_are_parsed_once_while_they_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host's evaluation read the machine networks in five rules, each parsing them with ``ipaddress``; the
    model parses them once, and again only when their texts change (docs/scale.md, issue 28's leftovers)."""
    parsed: list[str] = []
    real = ipaddress.ip_network

    def counted(text: Any, strict: bool = True) -> Any:
        parsed.append(str(text))
        return real(text, strict=strict)

    monkeypatch.setattr(ipaddress, "ip_network", counted)  # (the module the model parses with)
    model, hosts = ClusterModel(), mesh(5)
    inventory = {"hostname": "h0", "interfaces": [{"name": "eth0", "ipv4_addresses": ["10.0.0.1/16"]}]}
    hosts[0]["inventory"] = json.dumps(inventory)
    counts = []
    for _ in range(3):
        _validate(HostView(host=hosts[0], infra_env={}, cluster=dict(CLUSTER), hosts=hosts, model=model))
        counts.append(parsed.count("10.0.0.0/16"))
    assert counts[0] >= 1 and counts[1] == counts[2] == counts[0]  # (parsed by the first evaluation only)
    moved = {**CLUSTER, "machine_networks": [{"cidr": "10.1.0.0/16"}]}
    counts = []
    for _ in range(3):
        _validate(HostView(host=hosts[0], infra_env={}, cluster=moved, hosts=hosts, model=model))
        counts.append(parsed.count("10.1.0.0/16"))
    assert counts[0] >= 1 and counts[1] == counts[2] == counts[0]
    assert str(model.machine_networks(moved)[0]) == "10.1.0.0/16"


def test_a_cluster_evaluation_derives_what_it_reads_of_each_host_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VIP validations read every host's free-address report and inventory: decoded on every evaluation of
    a 1,000-host cluster (1,000 lists of 700 addresses, twice), they are now derived once per report by the
    model, with the same verdicts."""
    from rules import cluster_validations, documents

    decoded = counted_decodes(monkeypatch, cluster_model, documents)
    cluster = {"id": "c", "control_plane_count": 3, "machine_networks": [{"cidr": "10.0.0.0/24"}],
               "api_vips": [{"ip": "10.0.0.200"}], "ingress_vips": [{"ip": "10.0.0.201"}]}
    hosts = [{"id": f"h{i}", "status": "known", "role": "master",
              "inventory": json.dumps({"interfaces": [{"ipv4_addresses": [f"10.0.0.{i + 1}/24"]}]}),
              "free_addresses": json.dumps([{"network": "10.0.0.0/24",
                                             "free_addresses": [f"10.0.0.{a}" for a in range(100, 201)]}])}
             for i in range(4)]
    model = ClusterModel()

    def verdicts() -> dict[str, str]:
        results = cluster_validations.cluster_validations(cluster, hosts, model)
        return {r["id"]: r["message"] for r in results["network"] if r["id"].endswith("vips-valid")}

    first = verdicts()
    assert first == {"api-vips-valid": "api vips 10.0.0.200 belongs to the Machine CIDR and is not in use.",
                     "ingress-vips-valid": "ingress vips <10.0.0.201> is already in use in cidr 10.0.0.0/24"}
    assert decoded
    decoded.clear()
    assert verdicts() == first and decoded == []
    scan = [{"network": "10.0.0.0/24", "free_addresses": ["10.0.0.201"]}]
    hosts[2] = {**hosts[2], "free_addresses": json.dumps(scan)}
    assert verdicts()["ingress-vips-valid"].startswith("ingress vips 10.0.0.201 belongs") and len(decoded) == 1
    assert cluster_validations.cluster_validations(cluster, hosts) == cluster_validations.cluster_validations(
        cluster, hosts, model)  # (a model of its own when none is given: the same results)
