"""The pages over real HTTP: what they show, escaping, the session cookie, fragments, the install button, /docs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import requests

from common.host import Host
from inventory.collect import inventory
from tests.support.paths import FIXTURES
from tests.support.service import BASE, RefService, start_service

FIXTURES = FIXTURES


def add_host(svc: RefService, ie: str, inv: dict[str, Any]) -> str:
    host_id = str(uuid.uuid4())
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": host_id}, expected=201)
    reply = {"step_id": "inventory-1", "step_type": "inventory", "exit_code": 0, "output": json.dumps(inv)}
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts/{host_id}/instructions", json=reply, expected=204)
    return host_id


def fixture_inventory(machine: str) -> dict[str, Any]:
    return inventory(Host.at(str(FIXTURES / machine)))[0]


def test_host_page_shows_hardware_and_why_escaped(tmp_path: Path) -> None:
    inv = fixture_inventory("baremetal-server")
    inv["hostname"] = "<script>alert(1)</script>"
    with start_service(tmp_path) as svc:
        cluster = svc.create_cluster(name="lab")
        ie = svc.create_infra_env(cluster["id"])["id"]
        host_id = add_host(svc, ie, inv)
        page = requests.get(f"{svc.url}/infra-envs/{ie}/hosts/{host_id}", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        html = page.text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "Hostname &lt;script&gt;alert(1)&lt;/script&gt; is forbidden" in html  # the failing validation
        assert html.index('data-validation="hostname-valid"') < html.index('data-validation="has-min-memory"')
        assert "Disk has partition &#39;sdb1&#39; mounted on &#39;/var/mnt/data&#39;" in html
        assert 'installation disk</span>' in html and 'data-disk="sda"' in html
        assert "eno8303" in html and "10.1.0.21/24" in html  # NICs and their addresses
        assert "Routes" in html and "Step history" in html and "inventory" in html
        # the cluster page lists the host, the clusters page the cluster
        cluster_page = requests.get(f"{svc.url}/clusters/{cluster['id']}", timeout=10).text
        assert f'data-host="{host_id}"' in cluster_page and "Install cluster" in cluster_page
        assert "lab" in requests.get(svc.url + "/", timeout=10).text


def test_a_fragment_request_gets_the_live_part_and_304_when_unchanged(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        ie = svc.create_infra_env()["id"]
        host_id = add_host(svc, ie, fixture_inventory("kvm-vm"))
        url = f"{svc.url}/infra-envs/{ie}/hosts/{host_id}"
        first = requests.get(url, headers={"X-Console-Fragment": "1"}, timeout=10)
        assert first.status_code == 200 and "<html" not in first.text and 'data-disk="vda"' in first.text
        etag = first.headers["ETag"]
        same = requests.get(url, headers={"X-Console-Fragment": "1", "If-None-Match": etag}, timeout=10)
        assert same.status_code == 304
        reply = {"step_id": "ntp-1", "step_type": "ntp-synchronizer", "exit_code": 0,
                 "output": json.dumps({"ntp_sources": [{"source_name": "10.0.0.1", "source_state": "synced"}]})}
        svc.api("POST", f"/v2/infra-envs/{ie}/hosts/{host_id}/instructions", json=reply, expected=204)
        changed = requests.get(url, headers={"X-Console-Fragment": "1", "If-None-Match": etag}, timeout=10)
        assert changed.status_code == 200 and 'data-step="ntp-synchronizer"' in changed.text
        assert "synced" in changed.text


def test_token_auth_needs_a_sign_in_and_sets_a_strict_httponly_cookie(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        ie = svc.create_infra_env()["id"]
        anon = requests.Session()
        for path in ("/", f"/infra-envs/{ie}/hosts/{uuid.uuid4()}", "/docs", "/swagger.yaml", "/openapi.json"):
            resp = anon.get(svc.url + path, allow_redirects=False, timeout=10)
            assert resp.status_code == 303 and resp.headers["location"].startswith("/login"), path
        assert anon.get(svc.url + "/", headers={"X-Console-Fragment": "1"}, timeout=10).status_code == 401
        assert anon.get(svc.url + BASE + "/v2/clusters", timeout=10).status_code == 401
        wrong = anon.post(svc.url + "/login", data={"token": "nope", "next": "/"}, allow_redirects=False, timeout=10)
        assert wrong.status_code == 401 and "not this service" in wrong.text and not wrong.cookies
        ok = anon.post(svc.url + "/login", data={"token": "test-admin-token", "next": "https://elsewhere/"},
                       allow_redirects=False, timeout=10)
        assert ok.status_code == 303 and ok.headers["location"] == "/"  # never a redirect off this service
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "test-admin-token" not in cookie
        assert anon.get(svc.url + "/", timeout=10).status_code == 200
        assert anon.get(svc.url + BASE + "/v2/clusters", timeout=10).status_code == 200  # the API too
        assert anon.post(svc.url + "/logout", allow_redirects=False, timeout=10).status_code == 303
        assert anon.get(svc.url + "/", allow_redirects=False, timeout=10).status_code == 303


def test_no_login_without_auth(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        resp = requests.get(svc.url + "/login", allow_redirects=False, timeout=10)
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        assert "Log out" not in requests.get(svc.url + "/", timeout=10).text


def test_install_button_makes_the_api_checks(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:  # no OS image: refused as the API refuses it, with the reason
        cluster = svc.create_cluster(name="lab")
        resp = requests.post(f"{svc.url}/clusters/{cluster['id']}/install", allow_redirects=False, timeout=10)
        assert resp.status_code == 409 and "no OS image to write" in resp.text
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    with start_service(tmp_path, extra=["--dry-run-install", "--os-image", str(image)]) as svc:
        cluster = svc.create_cluster(name="lab2")
        resp = requests.post(f"{svc.url}/clusters/{cluster['id']}/install", allow_redirects=False, timeout=10)
        assert resp.status_code == 409 and "Cluster is not ready for installation" in resp.text
        assert svc.cluster(cluster["id"])["status"] == "pending-for-input"  # no hosts: no machine network
        foreign = requests.post(f"{svc.url}/clusters/{cluster['id']}/install", timeout=10,
                                headers={"Origin": "http://evil.example"}, allow_redirects=False)
        assert foreign.status_code == 403


def test_docs_serve_the_spec_offline_and_mark_what_is_implemented(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        page = requests.get(svc.url + "/docs", timeout=10).text
        assert "/static/swagger-ui/swagger-ui-bundle.js" in page
        assert 'src="http' not in page and 'href="http' not in page  # nothing from elsewhere
        assert requests.get(svc.url + "/static/swagger-ui/swagger-ui-bundle.js", timeout=10).status_code == 200
        marked = requests.get(svc.url + "/docs/spec.json", timeout=10).json()
        assert marked["host"] == svc.url.split("//")[1] and marked["schemes"] == ["http"]
        ops = marked["paths"]
        assert ops["/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions"]["get"]["x-implemented-here"]
        assert ops["/v2/clusters"]["post"]["x-implemented-here"]
        assert ops["/v2/clusters/{cluster_id}/manifests"]["get"]["x-implemented-here"]
        assert ops["/v2/clusters/{cluster_id}/preflight-requirements"]["get"]["x-implemented-here"]
        assert not ops["/v2/clusters/disconnected"]["post"]["x-implemented-here"]  # a 501
        raw = requests.get(svc.url + "/swagger.yaml", timeout=10)
        assert raw.status_code == 200 and "swagger: " in raw.text[:500]
        assert requests.get(svc.url + "/openapi.json", timeout=10).json()["swagger"] == "2.0"


def test_summaries_of_progress_and_step_results_take_garbage() -> None:
    from reference_service.pages import summaries

    host = {"progress": {"current_stage": "Writing image to disk", "installation_percentage": 42},
            "progress_stages": ["Starting installation", "Installing", "Writing image to disk", "Rebooting"]}
    progress = summaries.progress_view(host)
    assert progress is not None and progress["percentage"] == 42
    assert [s["state"] for s in progress["stages"]] == ["done", "done", "current", "todo"]
    assert summaries.progress_view({"progress": {"installation_percentage": 0}}) is None
    report = {"remote_hosts": [{"host_id": "h2", "l3_connectivity": [
        {"remote_ip_address": "10.0.0.2", "successful": True, "average_rtt_ms": 0.25, "packet_loss_percentage": 0}],
        "l2_connectivity": [{"remote_ip_address": "10.0.0.2", "remote_mac": "aa:bb", "successful": False,
                             "outgoing_nic": "eth0"}]}]}
    rows = summaries.step_summary("connectivity-check", report, {"h2": "worker-2"})["rows"]
    assert rows == [["worker-2", "L3", "10.0.0.2", "yes", "0.25 ms, 0% loss"],
                    ["worker-2", "L2", "10.0.0.2 (aa:bb)", "no", "via eth0"]]
    garbage_outputs: list[Any] = [None, 7, "x", [1, 2], {"remote_hosts": "no"}, {"images": [None, 3]},
                                  {"ntp_sources": {}}]
    for garbage in garbage_outputs:
        for step in summaries.SUMMARISED_STEPS:
            summaries.step_summary(step, garbage, {})
    latest = summaries.latest_steps([{"step_type": "ntp-synchronizer", "exit_code": 0, "output": "{not json"},
                                     {"step_type": "ntp-synchronizer", "exit_code": "x", "output": None}], {})
    assert [s["step_type"] for s in latest] == ["ntp-synchronizer"]
    assert summaries.inventory_view({"inventory": "{broken"}) is None
    assert summaries.validation_groups({"validations_info": '{"hardware": "nope"}'})[0]["items"] == []


def test_cluster_page_shows_every_cluster_validation_and_the_networking(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        cluster = svc.create_cluster(name="netpage")
        page = requests.get(f"{svc.url}/clusters/{cluster['id']}", timeout=10).text
        assert "machine-cidr-defined" in page and "pull-secret-set" in page and "api-vips-defined" in page
        assert "Networking" in page and "10.128.0.0/14" in page and "172.30.0.0/16" in page
