"""The pages over real HTTP: what they show, escaping, the session cookie, fragments, the install button, /docs."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import requests

from common.host import Host
from inventory.collect import inventory
from reference_service.http import console_forms
from reference_service.pages import timeline
from tests.support.paths import FIXTURES
from tests.support.service import BASE, RefService, start_service

FIXTURES = FIXTURES


def add_host(svc: RefService, ie: str, inv: dict[str, Any], agent_token: str | None = None) -> str:
    host_id = str(uuid.uuid4())
    headers = {"X-Secret-Key": agent_token} if agent_token else {}
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts", json={"host_id": host_id}, expected=201, headers=headers)
    reply = {"step_id": "inventory-1", "step_type": "inventory", "exit_code": 0, "output": json.dumps(inv)}
    svc.api("POST", f"/v2/infra-envs/{ie}/hosts/{host_id}/instructions", json=reply, expected=204, headers=headers)
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


def form_token(page: str) -> str:
    match = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert match, "no form token on the page"
    return match.group(1)


def test_install_button_makes_the_api_checks(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:  # no OS image: refused as the API refuses it, with the reason
        cluster = svc.create_cluster(name="lab")
        url = f"{svc.url}/clusters/{cluster['id']}"
        token = form_token(requests.get(url, timeout=10).text)
        resp = requests.post(url + "/install", data={"form_token": token}, allow_redirects=False, timeout=10)
        assert resp.status_code == 409 and "no OS image to write" in resp.text
        assert f'data-src="/clusters/{cluster["id"]}"' in resp.text  # the page's script asks the page, not the POST
        no_token = requests.post(url + "/install", data={"form_token": "0" * 64}, allow_redirects=False, timeout=10)
        assert no_token.status_code == 403
        foreign = requests.post(url + "/install", data={"form_token": token}, timeout=10,
                                headers={"Origin": "http://evil.example"}, allow_redirects=False)
        assert foreign.status_code == 403
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    with start_service(tmp_path, extra=["--dry-run-install", "--os-image", str(image)]) as svc:
        cluster = svc.create_cluster(name="lab2")
        url = f"{svc.url}/clusters/{cluster['id']}"
        token = form_token(requests.get(url, timeout=10).text)
        resp = requests.post(url + "/install", data={"form_token": token}, allow_redirects=False, timeout=10)
        assert resp.status_code == 409 and "Cluster is not ready for installation" in resp.text


def test_forms_change_a_host_and_the_networks_with_the_api_checks(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        browser = requests.Session()
        assert browser.post(svc.url + "/login", data={"token": "test-admin-token", "next": "/"},
                            timeout=10).status_code == 200
        cluster = svc.create_cluster(name="forms", base_dns_domain="example.com")
        ie = svc.create_infra_env(cluster["id"])["id"]
        host_id = add_host(svc, ie, fixture_inventory("baremetal-server"), svc.token(ie))
        page_url = f"{svc.url}/clusters/{cluster['id']}"
        page = browser.get(page_url, timeout=10).text
        token = form_token(page)
        # a cluster-managed multi-node cluster makes its machine network from its VIPs: no field to set it
        assert f'id="hf-{host_id}"' in page and 'name="api_vip"' in page and 'name="machine_network"' not in page
        settings = f"{svc.url}/infra-envs/{ie}/hosts/{host_id}/settings"

        def post(url: str, **fields: str) -> requests.Response:
            return browser.post(url, data={"form_token": token, **fields}, allow_redirects=False, timeout=10)

        # a bad hostname: the API's 400 and reason on the page, nothing of the host changed
        bad = post(settings, **{"from": "cluster", "hostname": "Not A Name!", "role": "master"})
        assert bad.status_code == 400 and "Not A Name!" in bad.text and 'role="alert"' in bad.text
        assert svc.host(ie, host_id)["role"] == "auto-assign"
        # an ineligible disk: refused with the disk's reason
        sdb = "/dev/disk/by-id/wwn-0x5000c500d4b6e1f3"
        bad_disk = post(settings, **{"from": "cluster", "disk": sdb})
        assert bad_disk.status_code == 400 and "mounted on" in bad_disk.text
        good = post(settings, **{"from": "cluster", "next": "?page=1", "hostname": "node-a", "role": "worker",
                                 "disk": "/dev/disk/by-id/nvme-eui.01000000000000005cd2e4e3c21b5451"})
        assert good.status_code == 303 and good.headers["location"] == f"/clusters/{cluster['id']}?page=1"
        host = svc.host(ie, host_id)
        assert (host["role"], host["requested_hostname"]) == ("worker", "node-a")
        assert host["installation_disk_id"].startswith("/dev/disk/by-id/nvme-")
        # the networks: a VIP in no discovered host's network (the host is in 10.1.0.0/24) is the API's 400, a
        # machine network set by hand too; good values are stored, the machine network the VIPs' network
        networks = f"{page_url}/networks"
        outside = post(networks, api_vip="10.9.0.5", ingress_vip="10.1.0.6")
        assert outside.status_code == 400 and "No suitable matching CIDR found for VIP 10.9.0.5" in outside.text
        by_hand = post(networks, machine_network="10.1.0.0/24", api_vip="10.1.0.5", ingress_vip="10.1.0.6")
        assert by_hand.status_code == 400 and "Setting the Machine Network CIDR is forbidden" in by_hand.text
        assert svc.cluster(cluster["id"])["api_vips"] == []
        assert post(networks, api_vip="10.1.0.5", ingress_vip="10.1.0.6", cluster_network="10.128.0.0/14",
                    host_prefix="23", service_network="172.30.0.0/16").status_code == 303
        stored = svc.cluster(cluster["id"])
        assert [v["ip"] for v in stored["api_vips"]] == ["10.1.0.5"]
        assert [n["cidr"] for n in stored["machine_networks"]] == ["10.1.0.0/24"]
        assert stored["cluster_networks"][0]["host_prefix"] == 23
        assert post(networks, host_prefix="x", cluster_network="10.128.0.0/14").status_code == 400
        # what another site cannot do: post without the page's token, as text, or from its origin
        assert browser.post(networks, data={"api_vip": "10.1.0.7"}, allow_redirects=False,
                            timeout=10).status_code == 403
        assert browser.post(networks, data=f"form_token={token}&api_vip=10.1.0.7",
                            headers={"Content-Type": "text/plain"}, timeout=10).status_code == 415
        assert browser.post(networks, data={"form_token": token, "api_vip": "10.1.0.7"}, timeout=10,
                            headers={"Origin": "http://evil.example"}, allow_redirects=False).status_code == 403
        assert requests.post(networks, data={"form_token": token, "api_vip": "10.1.0.7"}, timeout=10,
                             allow_redirects=False).status_code == 401  # no session
        too_big = browser.post(networks, data={"form_token": token, "api_vip": "1" * console_forms.MAX_FORM},
                               allow_redirects=False, timeout=10)
        assert too_big.status_code == 413
        assert [v["ip"] for v in svc.cluster(cluster["id"])["api_vips"]] == ["10.1.0.5"]


def shown_text(page: str) -> str:
    """What the events section says, tags and their attributes (links) left out."""
    return re.sub(r"<[^>]+>", " ", page.split('id="events"')[1])


def test_events_read_as_a_person_reads_them(tmp_path: Path) -> None:
    with start_service(tmp_path) as svc:
        cluster = svc.create_cluster(name="events", base_dns_domain="example.com")
        ie = svc.create_infra_env(cluster["id"])["id"]
        host_id = add_host(svc, ie, fixture_inventory("kvm-vm"))
        status = f"/api/reference/infra-envs/{ie}/hosts/{host_id}/status"
        for n in range(timeline.EVENTS_PER_PAGE // 2 + 3):  # more events than a page, half of them warnings
            svc.call("PUT", status, json={"status": "insufficient", "status_info": f"round {n}"})
            svc.call("PUT", status, json={"status": "discovering", "status_info": f"round {n}"})
        svc.patch_host(ie, host_id, host_name="final")
        url = f"{svc.url}/clusters/{cluster['id']}"
        page = requests.get(url, timeout=10).text
        events = re.findall(r'<li class="(\w+)" data-severity="\w+"><time datetime="([^"]+)" title="([^"]+)">'
                            r"([^<]+)</time>", page)
        assert events and all(ago.endswith(" ago") and exact.endswith(" UTC") for _, _, exact, ago in events)
        assert [iso for _, iso, _, _ in events] == sorted((iso for _, iso, _, _ in events), reverse=True)
        # one name per host: the name it goes by now beside each of its events, and no other
        named = re.findall(r'class="ev-host" href="[^"]+">([^<]+)</a>\s*<span class="ev-msg">([^<]+)</span>', page)
        assert named and {n for n, _ in named} == {"final"} and shown_text(page).count(host_id) == 0
        assert any(m.startswith("Updated status from insufficient to discovering") for _, m in named)
        # severity filter: only warnings, with the counts of each
        warnings = requests.get(url + "?severity=warning", timeout=10).text
        shown = set(re.findall(r'data-severity="(\w+)"', warnings))
        assert shown <= {"warning"} and re.search(r"warning \(\d+\)", warnings)
        # paged: the events are counted, and the second page holds older ones
        api_events = svc.api("GET", f"/v2/events?cluster_id={cluster['id']}")
        assert f"({len(api_events)} events)" in page
        older = requests.get(url + "?events=2", timeout=10).text
        assert "page 2 of" in older and older.count('data-severity="') == len(api_events) - timeline.EVENTS_PER_PAGE
        # one name per host: the event recorded under its id (it had no other name then) says the name it goes by
        assert any(e["message"] == f"Host {host_id}: Successfully registered" for e in api_events)
        assert re.search(r'">final</a>\s*<span class="ev-msg">Successfully registered</span>', older)
        assert shown_text(older).count(host_id) == 0


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
