"""The pages in a real browser (headless Debian chromium) against the service with real agents in namespaces.

Signed out, nothing of the service shows; signed in with the admin token, a host's page has its disks,
validations and step results, and takes in a new reply by itself, without a reload and without moving the
scroll. Screenshots at desktop and phone width go to tmp_path, or to docs/screenshots with
``UPDATE_SCREENSHOTS=1`` (how the README's pictures are made).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import browser
from tests.support.netns import Network
from tests.support.paths import ROOT

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not browser.available(), reason="needs chromium and chromium-driver")]

DNS = ["--local=/example.com/", "--host-record=api.lab.example.com,10.201.0.200",
       "--host-record=api-int.lab.example.com,10.201.0.200", "--address=/apps.lab.example.com/10.201.0.201",
       "--host-record=console-check.example.com,10.201.0.77"]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@contextlib.contextmanager
def lab(tmp_path: Path, count: int = 2) -> Iterator[tuple[Any, dict[str, Any], list[dict[str, Any]]]]:
    """A token-auth service in the hub and ``count`` hosts running real agents, each with its first replies."""
    with Network() as net, contextlib.ExitStack() as stack:
        hosts = [net.add_host() for _ in range(count)]
        stack.enter_context(net.start_dns(DNS, tmp_path))
        svc = stack.enter_context(net.start_service(tmp_path, auth="token", next_step_seconds=2,
                                                    extra=["--enable-virtual-interfaces"]))
        cluster = svc.create_cluster(name="lab", base_dns_domain="example.com",
                                     machine_networks=[{"cidr": "10.201.0.0/24"}])
        ie = svc.create_infra_env(cluster_id=cluster["id"])["id"]
        env = {"PULL_SECRET_TOKEN": svc.token(ie)}
        for i, h in enumerate(hosts):
            stack.enter_context(h.start_agent(svc.agent_url, ie, env=env, log=tmp_path / f"agent-{i}.log"))
        svc.wait_host(ie, lambda h: len(svc.hosts(ie)) == count, timeout=60)
        docs = []
        for n, doc in enumerate(sorted(svc.hosts(ie), key=lambda d: str(d["id"]))):
            svc.wait_host(ie, lambda h: bool(h.get("inventory")), timeout=60, host_id=doc["id"])
            svc.patch_host(ie, doc["id"], host_name=f"master-{n}")
            svc.wait_replies(doc["id"], "connectivity-check", timeout=90)
            docs.append(svc.host(ie, doc["id"]))
        yield svc, {**cluster, "infra_env_id": ie}, docs


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what}")


def shots_dir(tmp_path: Path) -> Path:
    return SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"


def test_pages_in_a_browser(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with lab(tmp_path) as (svc, cluster, hosts), browser.chromium() as page:
        ie, host = cluster["infra_env_id"], hosts[0]
        host_url = f"{svc.url}/infra-envs/{ie}/hosts/{host['id']}"

        # signed out: the sign-in page, nothing of any host
        for url in (svc.url + "/", host_url, f"{svc.url}/clusters/{cluster['id']}", svc.url + "/docs"):
            page.get(url)
            assert "/login" in page.current_url, url
            assert page.title.startswith("Sign in") and "master-0" not in page.page_source
            assert not page.find_elements(By.CSS_SELECTOR, "[data-disk], [data-validation], [data-host], #swagger-ui")
        assert page.get_cookies() == []

        # a wrong token is refused; the admin token signs in and lands where the browser was going
        page.find_element(By.ID, "token").send_keys("not-the-token")
        page.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # the click only starts the form's POST: wait for its answer before reading the page
        wait_for(lambda: "not this service" in page.page_source, 15, "the refusal of a wrong token")
        assert page.get_cookies() == []
        page.get(host_url)
        page.find_element(By.ID, "token").send_keys("test-admin-token")
        page.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: page.current_url == host_url, 15, "back on the host page after signing in")
        (cookie,) = page.get_cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != "test-admin-token"

        # the host page: disks with eligibility, validations, the latest step results
        inventory = json.loads(host["inventory"])
        shown_disks = {e.get_attribute("data-disk") for e in page.find_elements(By.CSS_SELECTOR, "tr[data-disk]")}
        assert shown_disks == {d["name"] for d in inventory["disks"]}
        validations = json.loads(host["validations_info"])
        shown = {e.get_attribute("data-validation") for e in page.find_elements(By.CSS_SELECTOR, "[data-validation]")}
        assert shown == {v["id"] for vs in validations.values() for v in vs}
        steps = {e.get_attribute("data-step") for e in page.find_elements(By.CSS_SELECTOR, "[data-step]")}
        assert {"inventory", "connectivity-check"} <= steps
        matrix = page.find_element(By.CSS_SELECTOR, "[data-step=connectivity-check]").text
        assert "master-1" in matrix and hosts[1]["id"] not in matrix  # peers by name, reached
        assert "yes" in matrix
        screenshot_pair(page, host_url, shots_dir(tmp_path), "host")

        # a new reply shows by itself: no reload (the marker survives), the scroll stays
        page.get(host_url)
        page.execute_script("window.__marker = 42; window.scrollTo(0, 700)")
        before = page.execute_script("return window.scrollY")
        assert "console-check.example.com" not in page.page_source
        svc.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{host['id']}/instructions", expected=201,
                 json={"step_type": "domain-resolution",
                       "args": [json.dumps({"domains": [{"domain_name": "console-check.example.com"}]})]})
        # read in one script: the live part may be swapped between a find and a read
        wait_for(lambda: "10.201.0.77" in page.execute_script("return document.getElementById('steps').textContent"),
                 45, "the domain-resolution reply on the page")
        assert page.execute_script("return window.__marker") == 42
        assert abs(page.execute_script("return window.scrollY") - before) <= 2

        # the cluster page lists both hosts; the docs page renders the spec with nothing fetched elsewhere
        page.get(f"{svc.url}/clusters/{cluster['id']}")
        rows = {e.get_attribute("data-host") for e in page.find_elements(By.CSS_SELECTOR, "tr[data-host]")}
        assert rows == {h["id"] for h in hosts}
        screenshot_pair(page, f"{svc.url}/clusters/{cluster['id']}", shots_dir(tmp_path), "cluster")
        page.get(svc.url + "/docs")
        wait_for(lambda: bool(page.find_elements(By.CSS_SELECTOR, ".opblock-tag")), 30, "Swagger UI rendered")
        assert "implemented here" in page.page_source
        browser.screenshot(page, shots_dir(tmp_path) / "docs-desktop.png", browser.DESKTOP[0], max_height=1400)

        # signing out ends the session
        page.get(svc.url + "/")
        page.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        # as with signing in, the click only starts the POST: wait for its redirect before going on
        wait_for(lambda: "/login" in page.current_url and page.get_cookies() == [], 15, "signed out")
        page.get(host_url)
        assert "/login" in page.current_url and page.get_cookies() == []


def screenshot_pair(page: Any, url: str, folder: Path, name: str) -> None:
    """Desktop and phone width; the phone's viewport honours the page's meta viewport, as a phone does."""
    page.get(url)
    browser.screenshot(page, folder / f"{name}-desktop.png", browser.DESKTOP[0])
    browser.screenshot(page, folder / f"{name}-phone.png", browser.PHONE[0], mobile=True)
    width = page.execute_script("return document.documentElement.scrollWidth")
    assert width <= browser.PHONE[0], f"{name}: the page is {width}px wide on a {browser.PHONE[0]}px phone"
    browser.emulate(page, browser.DESKTOP, mobile=False)
