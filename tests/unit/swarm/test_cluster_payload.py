"""What the swarm sends to create its cluster, by the service's release, against the real service's rules of
that release (ported as facts: tests/support/release_rules.py) and the spec's model; its VIPs and machine
network against the real service's network rules."""

from __future__ import annotations

import ipaddress

import pytest

from reference_service import spec
from swarm import machine
from tests.support.release_rules import creation_refusal

VERSIONS = ["4.11", "4.12", "4.16", "4.18"]


@pytest.mark.parametrize("release", [(2, 8, 0), (2, 11, 3), (2, 12, 0), (2, 13, 0), (2, 20, 1), (2, 28, 0),
                                     (2, 29, 0), (2, 35, 0), (2, 55, 0)])
def test_the_payload_each_release_takes(release: tuple[int, ...]) -> None:
    params = machine.cluster_params("swarm", release, version="4.12")
    assert creation_refusal(release, params, VERSIONS) is None
    assert not ({"api_vip", "ingress_vip"} <= params.keys() and {"api_vips", "ingress_vips"} <= params.keys())


def test_an_unknown_release_gets_the_lists_and_a_2023_service_refuses_them() -> None:
    params = machine.cluster_params("swarm", None)
    assert spec.errors("cluster-create-params", params) == []
    assert creation_refusal((2, 55), params, [machine.DEFAULT_OPENSHIFT_VERSION]) is None
    assert creation_refusal((2, 20), params, [machine.DEFAULT_OPENSHIFT_VERSION]) == \
        "request must include apiVIP alongside apiVIPs"
    # which the swarm answers by the other spelling (swarm.run.Swarm._create_cluster)
    assert creation_refusal((2, 20), machine.cluster_params("swarm", None, lists=False),
                            [machine.DEFAULT_OPENSHIFT_VERSION]) is None


@pytest.mark.parametrize(("versions", "release"), [
    ({"release_tag": "v2.20.1", "versions": {}}, (2, 20, 1)),
    ({"versions": {"assisted-installer-service": "quay.io/edge-infrastructure/assisted-service:v2.28.0"}},
     (2, 28, 0)),
    ({"versions": {"assisted-installer-service": "quay.io/app-sre/assisted-service:5f2a1b3"}}, None),
    ({"versions": {"assisted-installer-service": "Unknown"}}, None),
    ({"versions": {"assisted-installer-service": "reference-0.9.0"}}, None),
    (None, None),
])
def test_the_release_from_component_versions(versions: object, release: tuple[int, ...] | None) -> None:
    assert machine.service_release(versions) == release


def test_the_openshift_version_is_one_the_service_lists() -> None:
    assert machine.openshift_version({"4.12": {"default": False}, "4.13": {"default": True}, "4.9": {}}) == "4.13"
    assert machine.openshift_version({"4.9": {}, "4.12": {}, "4.10": {}}) == "4.12"
    assert machine.openshift_version(None) == machine.DEFAULT_OPENSHIFT_VERSION
    params = machine.cluster_params("swarm", (2, 20), version="4.11")
    assert creation_refusal((2, 20), params, ["4.11"]) is None
    assert "is not supported" in str(creation_refusal((2, 20), machine.cluster_params("swarm", (2, 20)), ["4.11"]))


def test_the_vips_are_free_addresses_of_the_hosts_machine_network() -> None:
    """autoAssignMachineNetworkCidr takes the hosts' network that holds the API VIP; the VIPs must be in it,
    differ, be neither its network nor broadcast address, and be free (no host has them); the machine network
    must not overlap the default cluster (10.128.0.0/14) and service (172.30.0.0/16) networks."""
    api, ingress = (ipaddress.ip_address(v) for v in machine.cluster_vips())
    first = machine.sim_host(0)
    network = first.block
    assert api in network and ingress in network and api != ingress
    assert {api, ingress}.isdisjoint({network.network_address, network.broadcast_address, network[1]})
    hosts = {ipaddress.ip_address(machine.sim_host(i).ip) for i in range(machine.PER_BLOCK)}
    assert hosts <= set(network.hosts()) and {api, ingress}.isdisjoint(hosts)
    (report,) = machine.free_addresses([f'["{network}"]'], machine.PER_BLOCK)
    assert {str(api), str(ingress)} <= set(report["free_addresses"])
    for taken in ("10.128.0.0/14", "172.30.0.0/16"):
        assert not network.overlaps(ipaddress.ip_network(taken))
        assert not machine.SWARM_NETWORK.overlaps(ipaddress.ip_network(taken))
