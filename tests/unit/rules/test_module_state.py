"""The rules keep no state of their own: evaluating hosts, building steps and applying replies changes no
module-level container of any rules module (the registries are filled on import and only read after). What
must be remembered between calls is the cluster model's (``rules/cluster_model.py``)."""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from types import ModuleType
from typing import Any

import rules
from rules.documents import HostView
from rules.registry import REPLY_HANDLERS, STEP_ARGUMENTS, VALIDATIONS

CLUSTER = {"id": "c", "name": "c", "base_dns_domain": "example.com", "control_plane_count": 3,
           "machine_networks": [{"cidr": "10.0.0.0/24"}], "status": "insufficient"}


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"rules.{m.name}") for m in pkgutil.iter_modules(rules.__path__)]


def _containers() -> dict[str, Any]:
    """Every module-level dict, list, set or deque of the rules, by name: a copy of what it holds."""
    out = {}
    for module in _modules():
        for name, value in vars(module).items():
            if isinstance(value, (dict, list, set)) and not name.startswith("__"):
                out[f"{module.__name__}.{name}"] = copy.copy(value)
    return out


def _host(i: int) -> dict[str, Any]:
    ip = f"10.0.0.{10 + i}"
    return {"id": f"00000000-0000-0000-0000-{i:012d}", "infra_env_id": "ie", "cluster_id": "c", "status": "known",
            "role": "master", "_checked_in": 1.0, "timestamp": 1,
            "inventory": json.dumps({"hostname": f"h{i}", "cpu": {"count": 8}, "memory": {"physical_bytes": 1 << 35},
                                     "disks": [{"id": "d", "name": "sda", "size_bytes": 1 << 40}],
                                     "interfaces": [{"name": "eth0", "type": "physical", "mac_address": f"02::{i}",
                                                     "ipv4_addresses": [f"{ip}/24"], "ipv6_addresses": []}]})}


def test_evaluating_building_and_applying_change_no_module_state() -> None:
    before = _containers()
    hosts = [_host(i) for i in range(4)]
    for host in hosts:
        host["connectivity"] = json.dumps({"remote_hosts": [
            {"host_id": h["id"], "l2_connectivity": [{"remote_ip_address": f"10.0.0.{10 + i}", "successful": True}]}
            for i, h in enumerate(hosts) if h is not host]})
    for host in hosts:
        view = HostView(host=host, infra_env={"id": "ie"}, cluster=CLUSTER, hosts=hosts, now=100.0)
        for validation in VALIDATIONS.values():
            validation.func(view)
        for build in STEP_ARGUMENTS.values():
            build(view)
        REPLY_HANDLERS["ntp-synchronizer"](view, {"ntp_sources": []}, {"exit_code": 0})
    assert _containers() == before
