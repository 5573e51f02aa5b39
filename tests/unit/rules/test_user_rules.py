"""The user-facing rules on documents alone: machine network assignment, cluster validations, event changes and
filters, documents as users read them, and the creation checks."""

from __future__ import annotations

import json

import pytest
from starlette.datastructures import QueryParams

from common.errors import ServiceRefusal
from rules import cluster_validations, events, machine_network, presentation, states, user_checks


def _host(address: str, gateway: str | None = None) -> dict[str, object]:
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
    assert (states.host_status(host, results, True) or ("", ""))[0] == "insufficient"
    ignore = {"_ignored_validations": {"host-validation-ids": '["has-memory-for-role", "has-cpu-cores-for-role"]'}}
    ignored = states.ignored_host_validations(ignore)
    assert ignored == {"has-memory-for-role", "has-cpu-cores-for-role"}
    assert states.host_status(host, results, True, ignored) == ("known", None)
    every = states.ignored_host_validations({"_ignored_validations": {"host-validation-ids": '["all"]'}})
    assert "has-memory-for-role" in every and "hostname-valid" not in every and "has-inventory" not in every
    results["network"][0] = {"id": "hostname-valid", "status": "failure", "message": "localhost is not valid"}
    assert (states.host_status(host, results, True, every) or ("", ""))[0] == "insufficient"
    assert states.ignored_host_validations({}) == frozenset()
    assert states.ignored_host_validations({"_ignored_validations": {"host-validation-ids": "not json"}}) == set()
