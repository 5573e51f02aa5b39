"""The network area of the reference service on host documents shaped like the real service's: step
arguments, and each validation's pass, fail and pending cases (ids, messages and thresholds)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from reference_service import spec
from rules import network
from rules.cluster_model import ClusterModel
from rules.documents import HostView
from rules.registry import Rulebook

RULES = Rulebook.of()  # every area's hooks, as the service's
REPLY_HANDLERS = RULES.reply_handlers
STEP_ARGUMENTS = RULES.step_arguments
VALIDATIONS = RULES.validations

CLUSTER = {"id": str(uuid.uuid4()), "name": "c1", "base_dns_domain": "example.com",
           "machine_networks": [{"cidr": "10.0.0.0/24"}]}


def inventory(ip: str, mac: str, *, routes: bool = True, extra: list[str] | None = None) -> str:
    return json.dumps({
        "hostname": f"h-{ip}",
        "interfaces": [
            {"name": "lo", "type": "device", "ipv4_addresses": ["127.0.0.1/8"], "ipv6_addresses": ["::1/128"]},
            {"name": "eth0", "type": "physical", "mac_address": mac, "ipv4_addresses": [f"{ip}/24", *(extra or [])],
             "ipv6_addresses": ["fd00::5/64"]},
        ],
        "routes": [{"destination": "0.0.0.0", "gateway": "10.0.0.1", "family": 2}] if routes else [],
    })


def make_host(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"00000000-0000-0000-0000-00000000000{i}", "status": "known", "role": "master",
            "inventory": inventory(f"10.0.0.{10 + i}", f"02:00:00:00:00:0{i}"), **fields}


def view(host: dict[str, Any], hosts: list[dict[str, Any]], cluster: dict[str, Any] | None = None) -> HostView:
    hosts = [host if h["id"] == host["id"] else h for h in hosts]
    return HostView(host=host, infra_env={}, cluster=cluster or CLUSTER, hosts=hosts)


def report(me: dict[str, Any], hosts: list[dict[str, Any]], *, reach: set[str] | None = None,
           rtt: float = 0.5, loss: float = 0.0, mtu_ok: bool = True) -> str:
    remote_hosts = []
    for other in hosts:
        if other["id"] == me["id"]:
            continue
        inv = json.loads(other["inventory"])
        ip, mac = inv["interfaces"][1]["ipv4_addresses"][0].split("/")[0], inv["interfaces"][1]["mac_address"]
        ok = reach is None or other["id"] in reach
        l3: dict[str, Any] = {"remote_ip_address": ip}
        if ok:
            l3.update(successful=True, average_rtt_ms=rtt, **({"packet_loss_percentage": loss} if loss else {}))
        remote_hosts.append({
            "host_id": other["id"],
            "l2_connectivity": [{"outgoing_nic": "eth0", "remote_ip_address": ip, "remote_mac": mac,
                                 **({"successful": True} if ok else {})}] if ok else None,
            "l3_connectivity": [l3],
            "mtu_report": [{"outgoing_nic": "eth0", "remote_ip_address": ip,
                            **({"mtu_successful": True} if mtu_ok else {})}],
        })
    doc = {"remote_hosts": remote_hosts}
    assert spec.errors("connectivity-report", doc) == []
    return json.dumps(doc)


def run(vid: str, v: HostView) -> tuple[str, str] | None:
    return VALIDATIONS[vid].func(v)


def test_connectivity_arguments_list_every_other_host_without_prefixes_or_loopback() -> None:
    hosts = [make_host(i) for i in range(3)] + [make_host(3, status="discovering")]
    args = STEP_ARGUMENTS["connectivity-check"](view(hosts[0], hosts))
    assert args is not None
    params = json.loads(args[0])
    assert args[0] == json.dumps(params)  # joined from entries encoded once per peer, the same text
    assert spec.errors("connectivity-check-params", params) == []
    assert [p["host_id"] for p in params] == [hosts[1]["id"], hosts[2]["id"]]
    assert params[0]["nics"] == [{"name": "eth0", "mac": "02:00:00:00:00:01",
                                  "ip_addresses": ["10.0.0.11", "fd00::5"]}]
    assert STEP_ARGUMENTS["connectivity-check"](view(hosts[0], hosts[:1])) is None


def test_connectivity_arguments_kept_by_the_model_follow_every_change_of_what_they_list() -> None:
    """The listing is made once per cluster and kept by the model (150 hosts are given it in a discovery's first
    seconds): each host still gets every other host but itself, first, middle or last, and a peer that stops
    being probed, changes its inventory, joins or leaves is listed accordingly on the next poll."""
    model = ClusterModel()
    hosts = [make_host(i) for i in range(5)]

    def listed(me: dict[str, Any]) -> list[str]:
        args = STEP_ARGUMENTS["connectivity-check"](HostView(host=me, infra_env={}, cluster=CLUSTER, hosts=hosts,
                                                             model=model))
        assert args is not None
        assert args[0] == json.dumps(json.loads(args[0]))  # still the same text json.dumps gives
        return [p["host_id"] for p in json.loads(args[0])]

    ids = [h["id"] for h in hosts]
    for me in (hosts[0], hosts[2], hosts[4]):
        assert listed(me) == [i for i in ids if i != me["id"]]
    hosts[3] = {**hosts[3], "status": "disconnected"}
    assert listed(hosts[0]) == [ids[1], ids[2], ids[4]]
    assert listed(hosts[4]) == [ids[0], ids[1], ids[2]]
    hosts[1] = {**hosts[1], "inventory": inventory("10.0.0.99", "02:00:00:00:00:99")}
    args = STEP_ARGUMENTS["connectivity-check"](HostView(host=hosts[0], infra_env={}, cluster=CLUSTER, hosts=hosts,
                                                         model=model))
    assert args is not None and json.loads(args[0])[0]["nics"][0]["mac"] == "02:00:00:00:00:99"
    hosts.append(make_host(5))
    hosts.pop(0)
    assert listed(hosts[-1]) == [ids[1], ids[2], ids[4]]
    assert listed(hosts[0]) == [ids[2], ids[4], hosts[-1]["id"]]


def test_connectivity_arguments_are_listed_once_for_the_whole_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """While nothing it lists changes, a second host's poll reads no peer again: the listing is the model's."""
    model, hosts = ClusterModel(), [make_host(i) for i in range(6)]
    read: list[str] = []
    entry = network.peer_entry

    def counted(m: ClusterModel, host: dict[str, Any], nics: Any) -> str | None:
        read.append(host["id"])
        return entry(m, host, nics)

    monkeypatch.setattr(network, "peer_entry", counted)
    for me in hosts[:3]:
        assert STEP_ARGUMENTS["connectivity-check"](HostView(host=me, infra_env={}, cluster=CLUSTER, hosts=hosts,
                                                             model=model)) is not None
    assert sorted(read) == sorted(h["id"] for h in hosts)  # once each, for the first poll only


def test_free_addresses_arguments_are_the_hosts_22_or_longer_ipv4_networks() -> None:
    host = make_host(0, inventory=inventory("10.0.0.10", "02:00:00:00:00:00",
                                            extra=["172.16.5.9/22", "192.168.0.1/16", "10.0.0.99/24"]))
    args = STEP_ARGUMENTS["free-network-addresses"](view(host, [host]))
    assert args is not None
    assert json.loads(args[0]) == ["10.0.0.0/24", "172.16.4.0/22"]
    assert spec.errors("free_addresses_request", json.loads(args[0])) == []


def test_domain_resolution_arguments_are_the_cluster_names() -> None:
    host = make_host(0)
    args = STEP_ARGUMENTS["domain-resolution"](view(host, [host]))
    assert args is not None
    request = json.loads(args[0])
    assert spec.errors("domain_resolution_request", request) == []
    assert [d["domain_name"] for d in request["domains"]] == [
        "api.c1.example.com", "api-int.c1.example.com", "console-openshift-console.apps.c1.example.com",
        "validateNoWildcardDNS.c1.example.com.", "validateNoWildcardDNS.c1.example.com"]
    assert STEP_ARGUMENTS["domain-resolution"](view(host, [host], {"id": "x", "name": "c1"})) is None


def test_verify_vips_and_tang_arguments() -> None:
    host = make_host(0)
    encryption = {"mode": "tang", "enable_on": "workers",
                  "tang_servers": '[{"url":"http://t:7500","thumbprint":"x"}]'}
    cluster: dict[str, Any] = {**CLUSTER, "api_vips": [{"ip": "10.0.0.5"}], "ingress_vips": [{"ip": "10.0.0.6"}],
                               "disk_encryption": encryption}
    vips = STEP_ARGUMENTS["verify-vips"](view(host, [host], cluster))
    assert vips is not None and json.loads(vips[0]) == [{"vip": "10.0.0.5", "vip_type": "api"},
                                                         {"vip": "10.0.0.6", "vip_type": "ingress"}]
    assert spec.errors("verify_vips_request", json.loads(vips[0])) == []
    assert STEP_ARGUMENTS["tang-connectivity-check"](view(host, [host], cluster)) is None  # a master
    for enable_on in ("masters", "masters,workers", "all"):
        encryption["enable_on"] = enable_on
        tang = STEP_ARGUMENTS["tang-connectivity-check"](view(host, [host], cluster))
        assert tang is not None and spec.errors("tang_connectivity_request", json.loads(tang[0])) == []
        assert json.loads(tang[0]) == {"tang_servers": encryption["tang_servers"]}


def test_api_vip_check_is_for_day2_hosts_only() -> None:
    host = make_host(0)
    assert STEP_ARGUMENTS["api-vip-connectivity-check"](view(host, [host])) is None
    day2 = {**host, "kind": "AddToExistingClusterHost", "role": "worker"}
    cluster = {**CLUSTER, "kind": "AddHostsCluster", "ignition_endpoint": {"ca_certificate": "Q0E="}}
    args = STEP_ARGUMENTS["api-vip-connectivity-check"](view(day2, [day2], cluster))
    assert args is not None
    request = json.loads(args[0])
    assert spec.errors("api_vip_connectivity_request", request) == []
    assert request == {"url": "http://api.c1.example.com:22624/config/worker", "ca_certificate": "Q0E="}


def test_majority_group() -> None:
    hosts = [make_host(i) for i in range(4)]
    ids = [h["id"] for h in hosts]
    isolated = ids[3]
    for h in hosts:
        reach = set(ids) - {isolated} if h["id"] != isolated else set()
        h["connectivity"] = report(h, hosts, reach=reach)
    for h in hosts[:3]:
        assert run("belongs-to-majority-group", view(h, hosts)) == (
            "success", "Host has connectivity to the majority of hosts in the cluster")
    assert run("belongs-to-majority-group", view(hosts[3], hosts)) == (
        "failure", "No connectivity to the majority of hosts in the cluster")
    # One-way reachability is not enough: the link must work both ways.
    hosts[3]["connectivity"] = report(hosts[3], hosts)
    assert run("belongs-to-majority-group", view(hosts[3], hosts))[0] == "failure"  # type: ignore[index]
    assert run("belongs-to-majority-group", view(hosts[0], hosts[:2])) == (
        "pending", "Not enough hosts in cluster to calculate connectivity groups")
    fresh = make_host(0)
    assert run("belongs-to-majority-group", view(fresh, [fresh, *hosts[1:]])) == (
        "pending", "Machine Network CIDR or Connectivity Majority Groups missing")


def test_majority_group_while_reports_are_refreshed() -> None:
    """A host was just cut off: only one peer has reported it lost yet. Two groups of three tie (the cut
    host's stale view, and the fresh one); as in the real service one of them is the majority group, the one
    whose members come first in id order, and the host with the fresh report fails until the others' reports
    say the same (``rules/majority.py``)."""
    hosts = [make_host(i) for i in range(4)]
    cut, fresh = hosts[0]["id"], hosts[1]
    for h in hosts:
        h["connectivity"] = report(h, hosts)
    fresh["connectivity"] = report(fresh, hosts, reach={h["id"] for h in hosts} - {cut})
    verdicts = [run("belongs-to-majority-group", view(h, hosts))[0] for h in hosts]  # type: ignore[index]
    assert verdicts == ["success", "failure", "success", "success"]
    for h in hosts[2:]:
        h["connectivity"] = report(h, hosts, reach={h["id"] for h in hosts} - {cut})
    verdicts = [run("belongs-to-majority-group", view(h, hosts))[0] for h in hosts]  # type: ignore[index]
    assert verdicts == ["failure", "success", "success", "success"]


@pytest.mark.parametrize(("role", "rtt", "loss", "latency_ok", "loss_ok"), [
    ("master", 99.0, 0.0, True, True),
    ("master", 101.0, 0.0, False, True),
    ("master", 1.0, 10.0, True, False),
    ("worker", 999.0, 10.0, True, True),
    ("worker", 1001.0, 11.0, False, False),
])
def test_latency_and_packet_loss_thresholds_per_role(role: str, rtt: float, loss: float, latency_ok: bool,
                                                     loss_ok: bool) -> None:
    hosts = [make_host(i, role=role) for i in range(3)]
    me = hosts[0]
    me["connectivity"] = report(me, hosts, rtt=rtt, loss=loss)
    latency = run("sufficient-network-latency-requirement-for-role", view(me, hosts))
    packet_loss = run("sufficient-packet-loss-requirement-for-role", view(me, hosts))
    assert latency is not None and packet_loss is not None
    assert latency[0] == ("success" if latency_ok else "failure"), latency
    assert packet_loss[0] == ("success" if loss_ok else "failure"), packet_loss
    if not loss_ok:
        limit = "=0%" if role == "master" else "<=10%"
        assert packet_loss[1] == (f"Packet loss percentage requirement of {limit} not met for connectivity "
                                  f"between h-10.0.0.10 and h-10.0.0.11, h-10.0.0.12.")
    if not latency_ok:
        limit_ms = "100" if role == "master" else "1000"
        assert latency[1] == (f"Network latency requirement of less than or equals {limit_ms} ms not met for "
                              f"connectivity between h-10.0.0.10 and h-10.0.0.11, h-10.0.0.12.")


def test_latency_is_only_checked_between_hosts_of_the_same_role() -> None:
    hosts = [make_host(0), make_host(1, role="worker"), make_host(2, role="worker")]
    hosts[0]["connectivity"] = report(hosts[0], hosts, rtt=500.0, loss=50.0)
    assert run("sufficient-network-latency-requirement-for-role", view(hosts[0], hosts))[0] == "success"  # type: ignore[index]
    assert run("sufficient-packet-loss-requirement-for-role", view(hosts[0], hosts))[0] == "success"  # type: ignore[index]


def test_machine_cidr_validations() -> None:
    host = make_host(0)
    assert run("machine-cidr-defined", view(host, [host])) == ("success", "Machine Network CIDR is defined")
    assert run("belongs-to-machine-cidr", view(host, [host])) == (
        "success", "Host belongs to all machine network CIDRs")
    other = {**CLUSTER, "machine_networks": [{"cidr": "192.168.1.0/24"}]}
    assert run("belongs-to-machine-cidr", view(host, [host], other))[0] == "failure"  # type: ignore[index]
    undefined = {**CLUSTER, "machine_networks": []}
    assert run("machine-cidr-defined", view(host, [host], undefined))[0] == "failure"  # type: ignore[index]
    assert run("belongs-to-machine-cidr", view(host, [host], undefined)) == (
        "pending", "Missing inventory or machine network CIDR")
    umn = {**undefined, "user_managed_networking": True}
    assert run("machine-cidr-defined", view(host, [host], umn)) == (
        "success", "No Machine Network CIDR needed: User Managed Networking")


def _nics(*nics: tuple[str, list[str], list[str]]) -> str:
    return json.dumps({"interfaces": [
        {"name": "lo", "type": "device", "ipv4_addresses": ["127.0.0.1/8"], "ipv6_addresses": ["::1/128"]},
        *({"name": n, "type": "physical", "ipv4_addresses": v4, "ipv6_addresses": v6} for n, v4, v6 in nics)]})


@pytest.mark.parametrize(
    ("nics", "cluster", "expected"),
    [
        ([("eth0", ["10.0.0.10/24"], ["fe80::1/64"]), ("eth1", ["10.1.0.10/24"], ["fe80::2/64"])], CLUSTER,
         ("success", "Host subnets are not overlapping")),
        ([("eth0", ["10.0.0.10/24"], []), ("eth1", ["10.0.0.11/24"], [])], CLUSTER,
         ("failure", "Address networks are overlapping: Address network 10.0.0.0/24 appears on multiple interfaces "
                     "[eth0, eth1]")),
        ([("eth0", ["10.0.0.10/16"], []), ("eth1", ["10.0.5.1/24"], [])], CLUSTER,
         ("failure", "Address networks are overlapping: Address networks 10.0.0.0/16 in interface eth0 and "
                     "10.0.5.0/24 in interface eth1 overlap")),
        # IPv6 counts only when the cluster uses it
        ([("eth0", ["10.0.0.10/24"], ["fd00::1/64"]), ("eth1", [], ["fd00::2/64"])], CLUSTER,
         ("success", "Host subnets are not overlapping")),
        ([("eth0", ["10.0.0.10/24"], ["fd00::1/64"]), ("eth1", [], ["fd00::2/64"])],
         {**CLUSTER, "machine_networks": [{"cidr": "10.0.0.0/24"}, {"cidr": "fd00::/64"}]},
         ("failure", "Address networks are overlapping: Address network fd00::/64 appears on multiple interfaces "
                     "[eth0, eth1]")),
    ],
)
def test_non_overlapping_subnets(nics: list[Any], cluster: dict[str, Any], expected: tuple[str, str]) -> None:
    host = make_host(0, inventory=_nics(*nics))
    assert run("non-overlapping-subnets", view(host, [host], cluster)) == expected


def test_iscsi_nic_must_stay_out_of_the_machine_network() -> None:
    disk = {"id": "/dev/disk/by-path/ip-10.9.0.5:3260-iscsi-iqn.2024-01.com.x:t-lun-0", "name": "sda",
            "drive_type": "iSCSI", "iscsi": {"host_ip_address": "10.9.0.20"}}
    inv = {**json.loads(inventory("10.0.0.10", "02:00:00:00:00:00")), "disks": [disk]}
    host = make_host(0, inventory=json.dumps(inv), installation_disk_id=disk["id"])
    assert run("no-iscsi-nic-belongs-to-machine-cidr", view(host, [host])) == (
        "success", "Network interface connected to iSCSI disk does not belong to machine network CIDRs")
    disk["iscsi"] = {"host_ip_address": "10.0.0.10"}
    host["inventory"] = json.dumps(inv)
    assert run("no-iscsi-nic-belongs-to-machine-cidr", view(host, [host])) == (
        "failure", "Network interface connected to iSCSI disk cannot belong to machine network CIDRs")
    host["installation_disk_id"] = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    assert run("no-iscsi-nic-belongs-to-machine-cidr", view(host, [host])) == (
        "success", "Installation disk is not iSCSI")


def test_ignition_downloadable_is_a_day2_check() -> None:
    host = make_host(0)
    assert run("ignition-downloadable", view(host, [host])) is None  # day-1: does not apply
    host["kind"] = "AddToExistingClusterHost"
    assert run("ignition-downloadable", view(host, [host])) == (
        "pending", "Ignition is not yet available, pending API connectivity")
    host["api_vip_connectivity"] = json.dumps({"is_success": True, "url": "http://api.c1.example.com:22624/config"})
    assert run("ignition-downloadable", view(host, [host])) == ("success", "Ignition is downloadable")
    host["api_vip_connectivity"] = json.dumps({"is_success": False, "url": "http://10.0.0.5:22624/config/worker",
                                               "download_error": "connection refused"})
    assert run("ignition-downloadable", view(host, [host])) == (
        "failure", "This host has failed to download the ignition file from http://10.0.0.5:22624/config/worker with "
        "the following error: connection refused. Please ensure the host can reach this URL")
    host["api_vip_connectivity"] = "not json"
    assert run("ignition-downloadable", view(host, [host]))[0] == "error"  # type: ignore[index]


def test_default_route() -> None:
    host = make_host(0)
    assert run("has-default-route", view(host, [host]))[0] == "success"  # type: ignore[index]
    host["inventory"] = inventory("10.0.0.10", "02:00:00:00:00:00", routes=False)
    assert run("has-default-route", view(host, [host])) == ("pending", "Missing default routing information.")
    inv = json.loads(host["inventory"])
    inv["routes"] = [{"destination": "10.0.0.0", "gateway": "", "family": 2}]
    host["inventory"] = json.dumps(inv)
    assert run("has-default-route", view(host, [host])) == (
        "failure", "Host has not yet been configured with a default route.")


def resolutions(**addresses: list[str]) -> str:
    """The step's reply for the cluster's names; keyword = first label (``-`` as ``_``), ``relative_wildcard``
    for the undotted wildcard probe."""
    out = []
    for n in network.dns_names("c1", "example.com"):
        key = n.split(".")[0].replace("-", "_")
        if n == "validateNoWildcardDNS.c1.example.com":
            key = "relative_wildcard"
        out.append({"domain_name": n, "ipv4_addresses": addresses.get(key, []), "ipv6_addresses": [], "cnames": None})
    return json.dumps({"resolutions": out})


UMN = {**CLUSTER, "user_managed_networking": True, "control_plane_count": 3}


def test_dns_names_are_not_needed_with_managed_networking_or_on_a_single_node() -> None:
    host = make_host(0)
    not_needed = ("success", "Domain name resolution for the api-int.c1.example.com domain was successful or not "
                  "required")
    assert run("api-int-domain-name-resolved-correctly", view(host, [host])) == not_needed
    sno = {**CLUSTER, "user_managed_networking": True, "control_plane_count": 1}
    assert run("api-int-domain-name-resolved-correctly", view(host, [host], sno)) == not_needed  # its dnsmasq
    outcome = run("api-int-domain-name-resolved-correctly", view(host, [host], UMN))
    assert outcome == ("pending", "Domain name resolution for the api-int.c1.example.com domain has not been "
                       "performed yet")
    no_base = {**UMN, "base_dns_domain": ""}
    outcome = run("api-domain-name-resolved-correctly", view(host, [host], no_base))
    assert outcome is not None and outcome[0] == "error"
    assert outcome[1].startswith("DNS validation for the API load balancer domain cannot be completed")


def test_dns_names_must_resolve_to_a_load_balancer_with_user_managed_networking() -> None:
    host = make_host(0)
    host["domain_name_resolutions"] = resolutions(api=["10.0.0.5"], api_int=["10.0.0.10"])
    assert run("api-domain-name-resolved-correctly", view(host, [host], UMN)) == (
        "success", "Domain name resolution for the api.c1.example.com domain was successful or not required")
    assert run("api-int-domain-name-resolved-correctly", view(host, [host], UMN)) == (
        "failure", "Domain api-int.c1.example.com must not point at 10.0.0.10 as it is the API address of this "
        "host. This domain must instead point at the IP address of a load balancer when using user managed "
        "networking in a multi control-plane node cluster")
    assert run("apps-domain-name-resolved-correctly", view(host, [host], UMN)) == (
        "failure", "Couldn't resolve domain name *.apps.c1.example.com on the host. To continue installation, "
        "create the necessary DNS entries to resolve this domain name to your cluster's application ingress IP "
        "address")
    host["domain_name_resolutions"] = resolutions(console_openshift_console=["10.0.0.6"])
    assert run("apps-domain-name-resolved-correctly", view(host, [host], UMN))[0] == "success"  # type: ignore[index]


def test_dns_wildcard_is_detected_by_both_spellings() -> None:
    host = make_host(0)
    assert run("dns-wildcard-not-configured", view(host, [host]))[0] == "pending"  # type: ignore[index]
    host["domain_name_resolutions"] = resolutions(api=["10.0.0.5"])
    assert run("dns-wildcard-not-configured", view(host, [host])) == ("success", "DNS wildcard check was successful")
    host["domain_name_resolutions"] = resolutions(validateNoWildcardDNS=["10.0.0.9"])
    wildcard = run("dns-wildcard-not-configured", view(host, [host]))
    assert wildcard is not None and wildcard[0] == "failure"
    assert wildcard[1].startswith("DNS wildcard configuration was detected for domain *.c1.example.com")
    assert wildcard[1].endswith("The domain resolves to addresses 10.0.0.9")
    host["domain_name_resolutions"] = resolutions(relative_wildcard=["10.9.9.9", "10.9.9.8"])
    search = run("dns-wildcard-not-configured", view(host, [host]))
    assert search is not None and search[0] == "failure"
    assert "This is usually a sign of DHCP-provided domain-search configuration" in search[1]
    assert search[1].endswith("The relative domain name resolves to addresses 10.9.9.9, 10.9.9.8")
    host["domain_name_resolutions"] = json.dumps({"resolutions": []})
    assert run("dns-wildcard-not-configured", view(host, [host]))[0] == "error"  # type: ignore[index]


def test_mtu_valid_is_not_blocking() -> None:
    hosts = [make_host(i) for i in range(3)]
    hosts[0]["connectivity"] = report(hosts[0], hosts, mtu_ok=False)
    outcome = run("mtu-valid", view(hosts[0], hosts))
    assert outcome is not None and outcome[0] == "failure" and "eth0 -> 10.0.0.11" in outcome[1]
    assert VALIDATIONS["mtu-valid"].blocking is False
    hosts[0]["connectivity"] = report(hosts[0], hosts)
    assert run("mtu-valid", view(hosts[0], hosts)) == ("success", "MTU is ok")


def test_replies_are_stored_where_the_real_service_keeps_them() -> None:
    host = make_host(0)
    v = view(host, [host])
    REPLY_HANDLERS["free-network-addresses"](v, [], {"exit_code": 0, "output": "[]"})
    assert "free_addresses" not in host  # an empty report is refused by the real service
    out = '[{"network":"10.0.0.0/24","free_addresses":["10.0.0.3"]}]'
    REPLY_HANDLERS["free-network-addresses"](v, json.loads(out), {"output": out})
    assert host["free_addresses"] == out
    REPLY_HANDLERS["tang-connectivity-check"](v, None, {"exit_code": -1, "error": "1 error occurred"})
    assert json.loads(host["tang_connectivity"]) == {"is_success": False, "error": "1 error occurred"}


def test_a_connectivity_reply_is_decoded_once_for_every_rule_that_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service hands what its reply check decoded to the cluster's model (``ClusterModel.prime`` and
    ``offer_report``): at 1,000 hosts a report is 300 KB, and mtu-valid, the latency checks, the IP collisions
    and the majority groups each decoded it."""
    from common import json_codec
    from reference_service.orchestrator import ReferenceService
    from reference_service.settings import Settings
    from reference_service.store.database import Store

    store = Store(tmp_path / "db")
    svc = ReferenceService(store, Settings())
    try:
        hosts = [make_host(i, infra_env_id="ie", cluster_id=CLUSTER["id"]) for i in range(3)]
        store.save_cluster({**CLUSTER, "status": "insufficient"})
        store.save_infra_env({"id": "ie", "cluster_id": CLUSTER["id"]})
        for h in hosts:
            store.save_host(h)
        new = report(hosts[0], hosts, mtu_ok=False)
        decoded: list[str] = []
        real = json_codec.loads

        def counted(text: str) -> Any:
            decoded.append(text)
            return real(text)

        monkeypatch.setattr(json_codec, "loads", counted)
        svc.post_reply("ie", hosts[0]["id"], {"step_id": "c-1", "step_type": "connectivity-check", "output": new})
        assert decoded.count(new) == 1  # by the reply's check, and by nothing after it
        stored = store.get_host("ie", hosts[0]["id"]) or {}
        results = {v["id"]: v for vs in json.loads(stored["validations_info"]).values() for v in vs}
        assert results["mtu-valid"]["status"] == "failure"
        assert results["belongs-to-majority-group"]["status"] == "failure"  # only its own report is in
        assert decoded.count(new) == 1
    finally:
        store.close()
