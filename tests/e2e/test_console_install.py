"""A blocked cluster taken to an install from the console alone, in a real browser (headless Debian chromium).

Three swarm hosts (real registrations, polls and replies over HTTP, every step answered, the install included)
join a three-node cluster that cannot install: no VIPs, so no machine network; one host set to be a worker,
so two control plane nodes for three. A person signs in, sees why on the cluster page, sets the role back,
picks another installation disk, enters the VIPs, and installs; the page ends showing the cluster installed,
with no check failing, no host short of 100 % and none disconnected. Screenshots go to tmp_path, or to
docs/screenshots with ``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from swarm import machine as swarm_machine
from tests.support import browser
from tests.support.paths import ROOT
from tests.support.service import BIN, start_service
from tests.support.swarm_hosts import until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not browser.available(), reason="needs chromium and chromium-driver")]

SCREENSHOTS = ROOT / "docs" / "screenshots"
PULL_SECRET = json.dumps({"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}})


def live_text(page: Any, css: str) -> str:
    """The text of an element of the live part, read in one script (the part may be swapped meanwhile)."""
    return str(page.execute_script(f"var e = document.querySelector({json.dumps(css)}); "
                                   "return e ? e.textContent : ''"))


def shots(tmp_path: Path) -> Path:
    return SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"


def test_a_blocked_cluster_is_installed_from_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    monkeypatch.setenv("DISABLED_STEPS", "")  # swarm hosts send no packets: every step is answered
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    with start_service(tmp_path, auth="token", extra=["--dry-run-install", "--os-image", str(image)]) as svc:
        cluster = svc.create_cluster(name="blocked", base_dns_domain="example.com", openshift_version="4.18",
                                     pull_secret=PULL_SECRET)
        cid = cluster["id"]
        ie = svc.create_infra_env(cid, pull_secret=PULL_SECRET)["id"]
        swarm = subprocess.Popen(
            [str(BIN / "assisted-reference-service"), "swarm", "--url", svc.url, "--hosts", "3", "--infra-env-id",
             ie, "--token", svc.token(ie), "--interval", "0.5", "--duration", "300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            hosts = until("3 hosts with an inventory", lambda: (lambda hs: sorted(
                hs, key=lambda h: h["requested_hostname"]) if len(hs) == 3 and all(h.get("inventory") for h in hs)
                else None)(svc.hosts(ie)))
            worker = hosts[2]
            svc.patch_host(ie, worker["id"], host_role="worker")  # what makes it two control plane nodes for three
            until("the cluster blocked", lambda: svc.cluster(cid)["status"] == "pending-for-input")
            with browser.chromium() as page:
                drive(page, By, Select, svc, cid, ie, hosts, tmp_path)
                # installed hosts stop polling (they rebooted into their OS): the service finds them
                # disconnected, which their pages do not show as a failing check
                swarm.kill()
                swarm.wait(timeout=10)
                host = hosts[0]
                svc.call("PATCH", f"/api/reference/infra-envs/{ie}/hosts/{host['id']}/document",
                         json={"_checked_in": time.time() - 3600})
                checks = json.loads(svc.host(ie, host["id"])["validations_info"])  # evaluated as it is read
                assert {"id": "connected", "status": "failure", "message": "Host is disconnected"} in checks["network"]
                page.get(f"{svc.url}/infra-envs/{ie}/hosts/{host['id']}")
                text = live_text(page, "#live")
                assert "Host is disconnected" not in text and "no longer apply" in text
                assert "100%" in live_text(page, "#progress h2") and not page.find_elements(By.ID, "host-form")
        finally:
            swarm.kill()
            swarm.wait(timeout=10)


def drive(page: Any, By: Any, Select: Any, svc: Any, cid: str, ie: str, hosts: list[dict[str, Any]],
          tmp_path: Path) -> None:
    url = f"{svc.url}/clusters/{cid}"
    # signing in
    page.get(url)
    assert "/login" in page.current_url
    page.find_element(By.ID, "token").send_keys("test-admin-token")
    page.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until("the cluster page after signing in", lambda: page.current_url == url, 15)

    # why it is blocked: the failing checks, the missing VIPs, the worker; the Install button disabled
    failing = {e.get_attribute("data-validation") for e in
               page.find_elements(By.CSS_SELECTOR, "#checks li.failure[data-validation]")}
    assert {"api-vips-defined", "ingress-vips-defined"} <= failing, failing
    assert not page.find_element(By.ID, "install").is_enabled()
    assert "none: required" in live_text(page, "#networking")
    worker_status = live_text(page, f"tr[data-host='{hosts[2]['id']}'] .status-why")
    assert worker_status  # the host's own reason, in full
    browser.screenshot(page, shots(tmp_path) / "cluster-blocked-desktop.png", browser.DESKTOP[0])
    browser.emulate(page, browser.DESKTOP, mobile=False)

    # what a person types is kept: the page does not refresh under a form being edited
    typed = page.find_element(By.CSS_SELECTOR, f"tr[data-host='{hosts[1]['id']}'] input[name=hostname]")
    typed.clear()
    typed.send_keys("being-typed")
    svc.patch_host(ie, hosts[0]["id"], host_name="renamed-meanwhile")  # the page's live part changes
    time.sleep(3)  # three refresh intervals
    until("the refresh paused", lambda: page.execute_script(
        "return document.getElementById('updated').textContent") == "paused while you edit", 15)
    assert typed.get_attribute("value") == "being-typed" and "renamed-meanwhile" not in live_text(page, "#hosts")

    def save_host(host: dict[str, Any], role: str | None = None, disk: str | None = None) -> None:
        page.get(url)
        row = f"tr[data-host='{host['id']}']"
        if role:
            Select(page.find_element(By.CSS_SELECTOR, f"{row} select[name=role]")).select_by_value(role)
        if disk:
            Select(page.find_element(By.CSS_SELECTOR, f"{row} select[name=disk]")).select_by_value(disk)
        page.find_element(By.CSS_SELECTOR, f"#hf-{host['id']} button").click()
        until("the form's redirect", lambda: page.current_url.startswith(url)
                 and page.execute_script("return document.readyState") == "complete", 15)

    # the role back to control plane; another installation disk for the first host
    save_host(hosts[2], role="master")
    until("the role saved", lambda: svc.host(ie, hosts[2]["id"])["role"] == "master", 15)
    first = hosts[0]
    eligible = [d["id"] for d in json.loads(first["inventory"])["disks"]
                if d["installation_eligibility"].get("eligible") and d["id"] != first["installation_disk_id"]]
    save_host(first, disk=eligible[0])
    until("the disk saved", lambda: svc.host(ie, first["id"])["installation_disk_id"] == eligible[0], 15)

    # a VIP outside the hosts' network: the API's refusal on the page, nothing stored
    api_vip, ingress_vip = swarm_machine.cluster_vips()

    def save_networks(api: str, ingress: str) -> None:
        page.get(url)
        for name, value in (("api_vip", api), ("ingress_vip", ingress)):
            field = page.find_element(By.CSS_SELECTOR, f"#network-form input[name={name}]")
            field.clear()
            field.send_keys(value)
        page.find_element(By.CSS_SELECTOR, "#network-form button[type=submit]").click()

    save_networks("192.0.2.10", ingress_vip)
    until("the refusal shown", lambda: "No suitable matching CIDR" in page.page_source
             or "does not belong" in page.page_source, 15)
    assert svc.cluster(cid)["api_vips"] == []
    save_networks(api_vip, ingress_vip)
    until("the VIPs saved", lambda: [v["ip"] for v in svc.cluster(cid)["api_vips"]] == [api_vip], 15)

    # ready: the page enables Install by itself (no reload); installing, then installed
    page.get(url)
    until("Install enabled", lambda: page.execute_script(
        "var b = document.getElementById('install'); return b && !b.disabled"), 60)
    page.find_element(By.ID, "install").click()
    until("the install started", lambda: svc.cluster(cid)["status"] != "ready", 15)
    until("the page showing the cluster installed", lambda: "installed" in live_text(page, "h1 .pill")
             and "100%" in live_text(page, "#installation h2"), 120)
    # the events keep the history (the checks that failed as the install began); the rest shows the cluster now
    text = page.execute_script("var l = document.getElementById('live').cloneNode(true);"
                               "l.querySelector('#events').remove(); return l.textContent")
    assert "all-hosts-are-ready-to-install" not in text and "Rebooting" not in text
    assert "Host is disconnected" not in text and "3 installed" in text
    cells = [live_text(page, f"tr[data-host='{h['id']}']") for h in hosts]
    assert all("installed" in c and "100%" in c and "Done" in c for c in cells), cells
    assert not page.find_elements(By.CSS_SELECTOR, "#live li.failure, #live select, #network-form")
    done = svc.cluster(cid)
    assert done["status"] == "installed"
    assert {h["role"] for h in svc.hosts(ie)} == {"master"}
    browser.screenshot(page, shots(tmp_path) / "cluster-installed-desktop.png", browser.DESKTOP[0])
    browser.screenshot(page, shots(tmp_path) / "cluster-installed-phone.png", browser.PHONE[0], mobile=True)
    width = page.execute_script("return document.documentElement.scrollWidth")
    assert width <= browser.PHONE[0], f"the page is {width}px wide on a {browser.PHONE[0]}px phone"
