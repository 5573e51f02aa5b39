"""The user-facing rules on documents alone: machine network assignment, cluster validations, event changes and
filters, documents as users read them, and the creation checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from common.errors import ServiceRefusal
from rules import cluster_validations, events, machine_network, presentation, states, user_checks
from rules.registry import Rulebook


def _host(address: str, gateway: str | None = None) -> dict[str, Any]:
    inv = {"interfaces": [{"ipv4_addresses": [address]}],
           "routes": [{"destination": "0.0.0.0", "gateway": gateway, "metric": 100}] if gateway else []}
    return {"id": "h", "inventory": json.dumps(inv), "status": "known", "role": "master"}


def test_machine_networks_are_assigned_as_the_real_service_does() -> None:
    sno = {"id": "c", "status": "pending-for-input", "control_plane_count": 1,
           "cluster_networks": [{"cidr": "10.128.0.0/14"}], "service_networks": [{"cidr": "172.30.0.0/16"}]}
    assert machine_network.auto_machine_networks(sno, [_host("192.168.5.7/24")]) == ["192.168.5.0/24"]
    two = {"interfaces": [{"ipv4_addresses": ["10.0.0.5/24", "192.168.5.7/24"]}],
           "routes": [{"destination": "0.0.0.0", "gateway": "192.168.5.1", "metric": 1}]}
    assert machine_network.auto_machine_networks(sno, [{"inventory": json.dumps(two)}]) == ["192.168.5.0/24"]
    multi = {"id": "c", "status": "insufficient", "control_plane_count": 3, "api_vips": [{"ip": "192.168.5.200"}]}
    assert machine_network.auto_machine_networks(multi, [_host("192.168.5.7/24")]) == ["192.168.5.0/24"]
    assert machine_network.auto_machine_networks({**multi, "status": "installing"}, [_host("192.168.5.7/24")]) \
        is None


def test_cluster_validations_and_the_status_they_give() -> None:
    cluster = {"id": "c", "control_plane_count": 3, "base_dns_domain": "example.com", "pull_secret_set": True,
               "cluster_networks": [{"cidr": "10.128.0.0/14", "host_prefix": 23}],
               "service_networks": [{"cidr": "172.30.0.0/16"}], "machine_networks": [{"cidr": "10.128.0.0/24"}]}
    results = cluster_validations.cluster_validations(cluster, [_host("10.128.0.5/24")])
    flat = {r["id"]: r for rs in results.values() for r in rs}
    assert flat["no-cidrs-overlapping"]["status"] == "failure"
    assert flat["api-vips-defined"]["message"] == "API virtual IPs are undefined and must be provided."
    assert cluster_validations.status_by_validations(results) == ("pending-for-input", "User input required")


def test_events_are_the_validation_changes() -> None:
    before = {"network": [{"id": "a", "status": "success"}, {"id": "b", "status": "failure"}]}
    after = {"network": [{"id": "a", "status": "failure"}, {"id": "b", "status": "success"}]}
    assert list(events.validation_changes(json.dumps(before), after, "h1")) == [
        ("Host h1: validation 'a' that used to succeed is now failing", "warning"),
        ("Host h1: validation 'b' is now fixed", "info")]
    assert list(events.validation_changes("", after, "h1")) == []
    listed = [{"severity": "info", "message": f"m{i}", "host_id": "h" if i % 2 else None} for i in range(6)]
    page, counts = events.filter_events(listed, QueryParams("limit=2&offset=1&order=descending"))
    assert [e["message"] for e in page] == ["m4", "m3"] and counts["info"] == 6
    with pytest.raises(ValueError):
        events.filter_events(listed, QueryParams("severities=loud"))


def test_documents_as_users_read_them() -> None:
    host = presentation.host_out({"id": "h", "role": "worker", "inventory": json.dumps({"hostname": "n1"})}, None)
    assert host["requested_hostname"] == "n1" and host["progress_stages"][-1] == "Done"
    cluster = presentation.cluster_out({"id": "c", "api_vips": None})
    assert cluster["api_vips"] == [] and cluster["install_completed_at"] == presentation.ZERO_TIME
    assert presentation.infra_env_out({"static_network_config": [{"a": 1}]})["static_network_config"] == '[{"a": 1}]'


@pytest.mark.parametrize("body", [{"name": "Bad_Name!"}, {"openshift_version": "3.11"}, {"pull_secret": "{}"},
                                  {"base_dns_domain": "-bad-"}])
def test_bad_creations_are_refused(body: dict[str, str]) -> None:
    good = {"name": "ok", "openshift_version": "4.18", "pull_secret": user_checks.SAMPLE_PULL_SECRET,
            "base_dns_domain": "example.com"}
    user_checks.check_create(good)
    with pytest.raises(ServiceRefusal):
        user_checks.check_create({**good, **body})


def test_ignored_host_validations_let_a_small_machine_be_known() -> None:
    """A lab's virtual machine lacks the memory and cores of its role: with those validations ignored (the real
    v2SetIgnoredValidations) it is known; what cannot be ignored still holds it back."""
    host = {"id": "h", "cluster_id": "c", "status": "insufficient", "inventory": "{}"}
    results = {"hardware": [{"id": "has-inventory", "status": "success", "message": "ok"},
                            {"id": "has-memory-for-role", "status": "failure", "message": "3 GiB, 16 needed"},
                            {"id": "has-cpu-cores-for-role", "status": "failure", "message": "1 core, 8 needed"}],
               "network": [{"id": "hostname-valid", "status": "success", "message": "ok"}]}
    validations = Rulebook.of().validations
    assert (states.host_status(host, results, True, validations) or ("", ""))[0] == "insufficient"
    ignore = {"_ignored_validations": {"host-validation-ids": '["has-memory-for-role", "has-cpu-cores-for-role"]'}}
    ignored = states.ignored_host_validations(ignore, validations)
    assert ignored == {"has-memory-for-role", "has-cpu-cores-for-role"}
    assert states.host_status(host, results, True, validations, ignored) == ("known", None)
    every = states.ignored_host_validations({"_ignored_validations": {"host-validation-ids": '["all"]'}}, validations)
    assert "has-memory-for-role" in every and "hostname-valid" not in every and "has-inventory" not in every
    results["network"][0] = {"id": "hostname-valid", "status": "failure", "message": "localhost is not valid"}
    assert (states.host_status(host, results, True, validations, every) or ("", ""))[0] == "insufficient"
    assert states.ignored_host_validations({}, validations) == frozenset()
    assert states.ignored_host_validations({"_ignored_validations": {"host-validation-ids": "not json"}},
                                           validations) == set()


_MULTI: dict[str, Any] = {"id": "c", "status": "pending-for-input", "control_plane_count": 3,
                          "user_managed_networking": False, "vip_dhcp_allocation": False, "api_vips": [],
                          "ingress_vips": []}
_VIPS: dict[str, Any] = {"api_vips": [{"ip": "192.168.5.200"}], "ingress_vips": [{"ip": "192.168.5.201"}]}


def _refusal(cluster: dict[str, Any], body: dict[str, Any], hosts: list[dict[str, Any]]) -> str:
    with pytest.raises(ServiceRefusal) as refused:
        user_checks.check_update(cluster, body, hosts)
    assert refused.value.status == 400
    return refused.value.reason


def test_vips_are_set_only_once_a_host_has_reported_their_network() -> None:
    """The real update path (``updateNonDhcpSingleStackNetworkParams``) computes the machine network from the
    API VIP and the hosts' interfaces, a match required: before any host is discovered, or with no host in the
    VIP's network, 400; with one, the VIPs are taken and their network becomes the machine network."""
    assert _refusal(_MULTI, _VIPS, []) == \
        "Calculate machine network CIDR: No suitable matching CIDR found for VIP 192.168.5.200"
    no_inventory = {"id": "h", "status": "discovering", "role": "auto-assign"}
    assert "No suitable matching CIDR" in _refusal(_MULTI, _VIPS, [no_inventory])
    assert "No suitable matching CIDR" in _refusal(_MULTI, _VIPS, [_host("10.1.0.7/24")])
    assert user_checks.check_update(_MULTI, _VIPS, [_host("10.1.0.7/24"), _host("192.168.5.7/24")]) == \
        "192.168.5.0/24"
    # the ingress VIP alone: its network; the API VIP's network decides when both are given
    assert user_checks.check_update(_MULTI, {"ingress_vips": _VIPS["ingress_vips"]}, [_host("192.168.5.7/24")]) \
        == "192.168.5.0/24"
    split: dict[str, Any] = {"api_vips": _VIPS["api_vips"], "ingress_vips": [{"ip": "10.1.0.9"}]}
    assert _refusal(_MULTI, split, [_host("10.1.0.7/24"), _host("192.168.5.7/24")]) == \
        "ingress-vip <10.1.0.9> does not belong to machine-network-cidr <192.168.5.0/24>"
    # clearing the VIPs needs no host; other fields are not held by the rule
    assert user_checks.check_update(_MULTI, {"api_vips": [], "ingress_vips": []}, []) is None
    assert user_checks.check_update(_MULTI, {"name": "renamed"}, []) is None


def test_where_the_vip_rule_does_not_apply_the_real_rules_do() -> None:
    """Machine networks are not the user's to set on a cluster-managed single-stack cluster; user-managed
    networking and VIP DHCP mode take no VIPs at all; creation takes VIPs without hosts."""
    hosts = [_host("192.168.5.7/24")]
    assert _refusal(_MULTI, {**_VIPS, "machine_networks": [{"cidr": "192.168.5.0/24"}]}, hosts).startswith(
        "Setting the Machine Network CIDR is forbidden when the cluster is neither in VIP DHCP allocation mode")
    umn = {**_MULTI, "user_managed_networking": True}
    assert _refusal(umn, _VIPS, hosts) == "API VIPs cannot be set with User Managed Networking"
    assert user_checks.check_update(umn, {"machine_networks": [{"cidr": "192.168.5.0/24"}]}, hosts) is None
    sno = {**_MULTI, "control_plane_count": 1, "user_managed_networking": True}
    assert _refusal(sno, {"ingress_vips": _VIPS["ingress_vips"]}, hosts) == \
        "Ingress VIPs cannot be set with User Managed Networking"
    dhcp = {**_MULTI, "vip_dhcp_allocation": True}
    assert _refusal(dhcp, _VIPS, hosts) == "Setting API VIPs is forbidden when cluster is in vip-dhcp-allocation mode"
    # an existing machine network is checked first, as ValidateClusterUpdateVIPAddresses does
    placed = {**_MULTI, "machine_networks": [{"cidr": "10.1.0.0/24"}]}
    assert _refusal(placed, _VIPS, hosts) == "api-vip <192.168.5.200> does not belong to machine-network-cidr " \
                                             "<10.1.0.0/24>"
    creation = {"name": "ok", "openshift_version": "4.18", "pull_secret": user_checks.SAMPLE_PULL_SECRET, **_VIPS}
    user_checks.check_create(creation)
    with pytest.raises(ServiceRefusal) as refused:
        user_checks.check_create({**creation, "user_managed_networking": True})
    assert refused.value.reason == "API VIPs cannot be set with User Managed Networking"
    with pytest.raises(ServiceRefusal) as refused:
        user_checks.check_create({**creation, "machine_networks": [{"cidr": "10.1.0.0/24"}]})
    assert "does not belong to machine-network-cidr <10.1.0.0/24>" in refused.value.reason
