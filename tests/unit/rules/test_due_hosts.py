"""Which hosts a change of the cluster's model makes due (``rules/due_hosts.py``): the ones it concerns, and
every host only when a count the rules compare with or the networks changed."""

from __future__ import annotations

import json
from typing import Any

from rules.cluster_model import ClusterModel
from rules.due_hosts import DueHosts

CLUSTER = {"id": "c", "machine_networks": [{"cidr": "10.0.0.0/16"}]}


def _host(i: int, name: str | None = None, reached: range = range(0)) -> dict[str, Any]:
    return {"id": f"h{i}", "role": "worker", "inventory": json.dumps({"hostname": name or f"n{i}"}),
            "connectivity": json.dumps({"remote_hosts": [
                {"host_id": f"h{b}", "l2_connectivity": [{"remote_ip_address": f"10.0.0.{b}", "successful": True}]}
                for b in reached if b != i]})}


def test_names_peers_and_groups_make_due_the_hosts_they_concern() -> None:
    model = ClusterModel()
    assert isinstance(model.due, DueHosts)
    hosts = [_host(i) for i in range(6)]
    model.sync(CLUSTER, hosts)
    assert model.due.take() is None  # the first hosts: the counts the rules compare with moved
    model.update(_host(6))
    assert model.due.take() == set()  # a seventh host with a name of its own concerns nobody
    model.update(_host(6, name="n2"))
    assert model.due.take() == {"h2"}  # now two hosts go by n2
    model.update(_host(6))
    assert model.due.take() == {"h2"}  # and then one again
    model.peer("h4", of="h1")  # h1's evaluation read h4's role
    model.update({**_host(4), "role": "master"})
    model.update({**_host(5), "role": "master"})
    assert model.due.take() == {"h1"}
    model.peer("h4", of="h1")
    model.remove("h4")
    assert model.due.take() == {"h1"}  # h4 left
    model.peer("h5", of="h1")
    model.update({**_host(5), "role": "worker"})
    model.due.judged("h1")  # evaluated since: not due
    assert model.due.take() == set()
    model.regroup()
    assert model.due.take() is None  # the first groups: every host
    full = range(7)
    model.update(_host(0, reached=full))
    model.update(_host(1, reached=full))
    model.update(_host(2, reached=full))
    model.regroup()
    assert model.due.take() == {"h0", "h1", "h2"}  # they form the majority group
    model.sync({"id": "c", "machine_networks": [{"cidr": "10.1.0.0/16"}]}, [_host(i) for i in range(4)])
    assert model.due.take() is None  # other networks
