"""domain-resolution against a real dnsmasq, api-vip and tang checks against real HTTP(S) servers, all in
network namespaces; and bad step arguments, which must become clear error replies."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_service import spec
from tests.support.netns import Host, Namespace, Network
from tests.support.paths import ROOT
from tests.support.service import stop_process

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
ZONE = "test.example.com"


def ok_output(reply: dict[str, Any], model: str) -> Any:
    assert "exit_code" not in reply, reply
    out = json.loads(reply["output"])
    assert spec.errors(model, out) == []
    return out


def wait_port(ns: Namespace, address: str, port: int, proc: subprocess.Popen[str]) -> None:
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=0.5).close()"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        if ns.run([sys.executable, "-c", code]).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {address}:{port} within 10 s")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A hub running dnsmasq (port 53) and the HTTP fixture (plain on 8080, TLS on 8443); one host."""
    tmp = tmp_path_factory.mktemp("anet-site")
    procs: list[subprocess.Popen[str]] = []
    with Network() as net, contextlib.ExitStack() as stack:
        host = net.add_host(ipv6=True)
        hub = net.hub
        host.set_resolv_conf(f"nameserver {net.hub_ipv4}\nsearch wild.example.org\noptions timeout:1 attempts:1\n")
        for name in ("server", "other"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", f"/CN={net.hub_ipv4}", "-addext", f"subjectAltName=IP:{net.hub_ipv4}",
                            "-keyout", str(tmp / f"{name}.key"), "-out", str(tmp / f"{name}.pem")],
                           check=True, capture_output=True, timeout=60)
        try:
            dns = net.start_dns([
                "--local=/example.com/", "--local=/example.org/",
                f"--host-record=api.{ZONE},10.201.0.100",
                f"--host-record=api-int.{ZONE},10.201.0.100",
                f"--host-record=v6.{ZONE},fd42:201::100",
                f"--host-record=both.{ZONE},10.201.0.104,fd42:201::104",
                f"--cname=alias.{ZONE},alias2.{ZONE}", f"--cname=alias2.{ZONE},api.{ZONE}",
                f"--address=/apps.{ZONE}/10.201.0.101",
                "--address=/wild.example.org/10.201.0.102",
                "--address=/wildc.example.com/10.201.0.103",
                *(f"--host-record=big.{ZONE},10.201.1.{i}" for i in range(1, 41)),
            ], tmp)
            stack.enter_context(dns)
            fixture = [sys.executable, "-m", "tests.support.http_fixture", "--address", net.hub_ipv4]
            env = {"PYTHONPATH": str(ROOT)}
            procs.append(hub.popen([*fixture, "--port", "8080"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL))
            procs.append(hub.popen([*fixture, "--port", "8443", "--cert", str(tmp / "server.pem"), "--key",
                                    str(tmp / "server.key")], env=env, cwd=ROOT, stdout=subprocess.DEVNULL))
            wait_port(hub, net.hub_ipv4, 8080, procs[0])
            wait_port(hub, net.hub_ipv4, 8443, procs[1])
            yield {"net": net, "host": host, "tmp": tmp, "hub": net.hub_ipv4}
        finally:
            for proc in procs:
                stop_process(proc)  # type: ignore[arg-type]


def resolve(host: Host, *names: str) -> dict[str, dict[str, Any]]:
    reply = host.step("domain-resolution", [json.dumps({"domains": [{"domain_name": n} for n in names]})])
    out = ok_output(reply, "domain_resolution_response")
    assert [r["domain_name"] for r in out["resolutions"]] == list(names)
    return {r["domain_name"]: r for r in out["resolutions"]}


# -- DNS ----------------------------------------------------------------------------------------------------
@pytest.mark.netns
@needs_root
def test_a_aaaa_cname_and_nxdomain(site: dict[str, Any]) -> None:
    got = resolve(site["host"], f"api.{ZONE}", f"v6.{ZONE}", f"both.{ZONE}", f"alias.{ZONE}", f"missing.{ZONE}.")
    assert got[f"api.{ZONE}"] == {"domain_name": f"api.{ZONE}", "ipv4_addresses": ["10.201.0.100"],
                                  "ipv6_addresses": [], "cnames": [f"api.{ZONE}."]}
    assert got[f"v6.{ZONE}"]["ipv6_addresses"] == ["fd42:201::100"]
    assert got[f"v6.{ZONE}"]["ipv4_addresses"] == []
    assert got[f"both.{ZONE}"]["ipv4_addresses"] == ["10.201.0.104"]
    assert got[f"both.{ZONE}"]["ipv6_addresses"] == ["fd42:201::104"]
    # A CNAME chain alias -> alias2 -> api: the addresses of the end, and the canonical name LookupCNAME gives.
    assert got[f"alias.{ZONE}"]["ipv4_addresses"] == ["10.201.0.100"]
    assert got[f"alias.{ZONE}"]["cnames"] == [f"api.{ZONE}."]
    # NXDOMAIN is an answer: empty lists, cnames null, and the step still succeeds.
    assert got[f"missing.{ZONE}."] == {"domain_name": f"missing.{ZONE}.", "ipv4_addresses": [],
                                       "ipv6_addresses": [], "cnames": None}


@pytest.mark.netns
@needs_root
def test_answer_too_big_for_udp_is_asked_again_over_tcp(site: dict[str, Any]) -> None:
    got = resolve(site["host"], f"big.{ZONE}")
    # 40 A records do not fit the 512 bytes of a plain UDP answer: dnsmasq sets TC, the step retries over TCP.
    assert sorted(got[f"big.{ZONE}"]["ipv4_addresses"]) == sorted(f"10.201.1.{i}" for i in range(1, 41))


@pytest.mark.netns
@needs_root
def test_wildcard_zone_and_search_domain(site: dict[str, Any]) -> None:
    got = resolve(site["host"], f"console-openshift-console.apps.{ZONE}", "validateNoWildcardDNS.wildc.example.com.",
                  f"validateNoWildcardDNS.{ZONE}.", f"validateNoWildcardDNS.{ZONE}")
    assert got[f"console-openshift-console.apps.{ZONE}"]["ipv4_addresses"] == ["10.201.0.101"]
    # A wildcard record in the cluster's zone makes the rooted probe name resolve...
    assert got["validateNoWildcardDNS.wildc.example.com."]["ipv4_addresses"] == ["10.201.0.103"]
    # ...while a wildcard in a DHCP search domain only catches the unrooted one: why the service sends both.
    assert got[f"validateNoWildcardDNS.{ZONE}."]["ipv4_addresses"] == []
    assert got[f"validateNoWildcardDNS.{ZONE}"]["ipv4_addresses"] == ["10.201.0.102"]
    # the canonical name keeps the query's case, as Go's LookupCNAME returns it
    assert got[f"validateNoWildcardDNS.{ZONE}"]["cnames"] == [f"validateNoWildcardDNS.{ZONE}.wild.example.org."]


# -- api-vip ------------------------------------------------------------------------------------------------
def api_vip(host: Host, **request: Any) -> dict[str, Any]:
    return host.step("api-vip-connectivity-check", [json.dumps(request)])


@pytest.mark.netns
@needs_root
def test_api_vip_downloads_and_filters_ignition_over_tls(site: dict[str, Any]) -> None:
    url = f"https://{site['hub']}:8443/config/worker"
    ca = base64.b64encode((site["tmp"] / "server.pem").read_bytes()).decode()
    reply = api_vip(site["host"], url=url, ca_certificate=ca, ignition_endpoint_token="secret-token",
                    request_headers=[{"key": "X-Extra", "value": "yes"}])
    out = ok_output(reply, "api_vip_connectivity_response")
    assert out["is_success"] is True and out["url"] == url
    ignition = json.loads(out["ignition"])
    assert ignition["ignition"] == {"version": "3.2.0"}
    assert "systemd" not in ignition
    assert [f["path"] for f in ignition["storage"]["files"]] == [
        "/etc/kubernetes/kubeconfig", "/etc/kubernetes/manifests/coredns.yaml"]
    assert ignition["storage"]["luks"][0]["name"] == "root"


@pytest.mark.netns
@needs_root
@pytest.mark.parametrize("case", ["bad-ca", "no-token", "not-ignition", "refused"])
def test_api_vip_failures_are_reported_in_the_output(site: dict[str, Any], case: str) -> None:
    hub = site["hub"]
    request: dict[str, Any] = {"url": f"https://{hub}:8443/config/worker", "ignition_endpoint_token": "secret-token",
                               "request_headers": [{"key": "X-Extra", "value": "yes"}]}
    if case == "bad-ca":
        request["ca_certificate"] = base64.b64encode((site["tmp"] / "other.pem").read_bytes()).decode()
        expected = (f'Get "{request["url"]}": tls: failed to verify certificate: '
                    "x509: certificate signed by unknown authority")
    elif case == "no-token":
        request = {"url": f"http://{hub}:8080/config/worker"}
        expected = "401"
    elif case == "not-ignition":
        request = {"url": f"http://{hub}:8080/not-ignition"}
        expected = "not valid JSON"
    else:
        request = {"url": f"http://{hub}:8081/config/worker"}
        # the Go agent's words, which people search for
        expected = f'Get "http://{hub}:8081/config/worker": dial tcp {hub}:8081: connect: connection refused'

    reply = api_vip(site["host"], **request)
    # A failed download is an answer, not a failed step: exit code 0, the reason in the output.
    assert reply.get("exit_code", 0) == 0
    assert reply["error"] == "ignition download error"
    out = json.loads(reply["output"])
    assert spec.errors("api_vip_connectivity_response", out) == []
    assert out["url"] == request["url"]
    assert "is_success" not in out and "ignition" not in out
    assert out["download_error"].startswith("ignition file download failed: ")
    assert expected in out["download_error"]


# -- tang ---------------------------------------------------------------------------------------------------
def tang(host: Host, servers: list[dict[str, str]]) -> dict[str, Any]:
    return host.step("tang-connectivity-check", [json.dumps({"tang_servers": json.dumps(servers)})])


@pytest.mark.netns
@needs_root
def test_tang_servers_answer(site: dict[str, Any]) -> None:
    url = f"http://{site['hub']}:8080"
    out = ok_output(tang(site["host"], [{"url": url, "thumbprint": "good"}]), "tang_connectivity_response")
    assert out == {"is_success": True, "tang_server_response": [{
        "payload": "eyJrZXlzIjpbXX0", "signatures": [{"protected": "eyJhbGciOiJFUzUxMiJ9",
                                                      "signature": "c2lnbmF0dXJl"}],
        "tang_url": f"{url}/adv/good"}]}


@pytest.mark.netns
@needs_root
def test_tang_failure_is_a_failed_step(site: dict[str, Any]) -> None:
    reply = tang(site["host"], [{"url": f"http://{site['hub']}:8080", "thumbprint": "good"},
                                {"url": f"http://{site['hub']}:8080", "thumbprint": "unknown"}])
    assert reply["exit_code"] == -1
    assert json.loads(reply["output"]) == {"tang_server_response": None}
    assert reply["error"].startswith("1 error occurred:\n\t* ")
    assert "/adv/unknown: unexpected status 404" in reply["error"]


@pytest.mark.netns
@needs_root
def test_tang_refused_is_reported_in_go_words(site: dict[str, Any]) -> None:
    url = f"http://{site['hub']}:8081"
    reply = tang(site["host"], [{"url": url, "thumbprint": "good"}])
    assert reply["exit_code"] == -1
    assert reply["error"] == (f'1 error occurred:\n\t* Get "{url}/adv/good": dial tcp {site["hub"]}:8081: connect: '
                              "connection refused\n\n")


# -- bad arguments (no namespace needed: they never get to the network) --------------------------------------
def step_here(step_type: str, args: list[str]) -> dict[str, Any]:
    """Each argument as the Go binary takes it (a bad one cannot be told from a JSON list of arguments)."""
    agent = str(Path(sys.executable).parent / "agent")
    proc = subprocess.run([agent, "step", step_type, *args, "--wire"], capture_output=True,
                          text=True, timeout=60)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(("step_type", "args", "message"), [
    ("connectivity-check", ["[{not json"], "argument is not valid JSON"),
    ("connectivity-check", ['[{"host_id":"x","nics":[]}]'], "is not a UUID"),
    ("connectivity-check", ['[{"host_id":"' + "1" * 8 + "-1111-1111-1111-" + "1" * 12
                            + '","nics":[{"mac":"zz","ip_addresses":[]}]}]'], "is not a MAC address"),
    ("free-network-addresses", ['["10.0.0.0/8"]'], "networks shorter than /22 are refused"),
    ("free-network-addresses", ['["10.201.0.5/24"]'], "is not a canonical CIDR; use 10.201.0.0/24"),
    ("free-network-addresses", ['["fd42::/64"]'], "is not an IPv4 CIDR"),
    ("free-network-addresses", ["not json"], "argument is not valid JSON"),
    ("domain-resolution", ['{"domains":[{"domain_name":"not a domain!"}]}'], "is not a valid domain name"),
    ("domain-resolution", ['{"domains":[{"domain_name":"-bad-.example.com"}]}'], "is not a valid domain name"),
    ("domain-resolution", ['{"domains":[{}]}'], "must have a domain name field"),
    ("domain-resolution", ["[]"], "argument must be a JSON object"),
    ("api-vip-connectivity-check", ['{"verify_cidr":true}'], "missing required field 'url'"),
    ("api-vip-connectivity-check", ['{"url":"http://x","ca_certificate":"%%%"}'], "ca_certificate is not base64"),
    ("tang-connectivity-check", ['{"tang_servers":"[{]"}'], "argument is not valid JSON"),
    ("verify-vips", ['[{"vip":"300.1.1.1","vip_type":"api"}]'], "is not an IP address"),
    ("verify-vips", ['[{"vip":"10.0.0.1","vip_type":"egress"}]'], "must be one of api, ingress"),
    ("verify-vips", [], "verify-vips cmd accepts only 1 params in args, given args []"),
])
def test_bad_arguments_get_a_clear_error_reply(step_type: str, args: list[str], message: str) -> None:
    reply = step_here(step_type, args)
    assert reply["exit_code"] == -1
    assert message in reply["error"], reply["error"]
    assert "output" not in reply
    assert "Traceback" not in reply["error"]
