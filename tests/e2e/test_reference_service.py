"""The reference service's API contract, through its real HTTP interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from reference_service import spec
from reference_service.spec import BUNDLED_SPEC
from tests.support.service import SPEC, RefService, start_service

BASE = "/api/assisted-install"
HOST = "11111111-2222-3333-4444-555555555555"


def test_bundled_spec_is_the_contract() -> None:
    if not SPEC.exists():
        pytest.skip("../shared/spec is not beside this checkout")
    assert BUNDLED_SPEC.read_bytes() == SPEC.read_bytes()


def test_register_returns_the_host_and_next_step_runner_command(service: RefService) -> None:
    cluster = service.create_cluster()
    assert spec.errors("cluster", cluster) == []
    ie = service.create_infra_env(cluster_id=cluster["id"])["id"]
    resp = requests.post(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts", timeout=10,
                         json={"host_id": HOST, "discovery_agent_version": "quay.io/x/agent:v1"})
    assert resp.status_code == 201
    body = resp.json()
    assert spec.errors("host_registration_response", body) == []
    assert body["status"] == "discovering" and body["cluster_id"] == cluster["id"]
    runner = json.loads(body["next_step_runner_command"]["args"][0])
    assert spec.errors("next_step_cmd_request", runner) == []
    assert runner == {"infra_env_id": ie, "host_id": HOST, "agent_version": "quay.io/x/agent:v1"}
    steps = requests.get(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions",
                         params={"timestamp": 1}, timeout=10).json()
    assert spec.errors("steps", steps) == []
    assert [s["step_type"] for s in steps["instructions"]] == ["inventory"]
    assert steps["instructions"][0]["args"] == [HOST]
    assert steps["instructions"][0]["step_id"].startswith("inventory-")


def test_errors_use_the_spec_shapes_and_codes(service: RefService) -> None:
    ie = service.create_infra_env()["id"]
    missing = requests.post(f"{service.url}{BASE}/v2/infra-envs/{HOST}/hosts", json={"host_id": HOST}, timeout=10)
    assert missing.status_code == 404 and spec.errors("error", missing.json()) == []
    bad = requests.post(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts", json={"host_id": "nope"}, timeout=10)
    assert bad.status_code == 400 and "is not a 'uuid'" in bad.json()["reason"]
    unknown_host = requests.get(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}/instructions", timeout=10)
    assert unknown_host.status_code == 404


def test_step_replies_are_parsed_into_their_model(service: RefService) -> None:
    ie = service.create_infra_env()["id"]
    url = f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts"
    assert requests.post(url, json={"host_id": HOST}, timeout=10).status_code == 201
    post = f"{url}/{HOST}/instructions"
    wrong = {"step_id": "inventory-1", "step_type": "inventory", "output": json.dumps({"cpu": {"count": "two"}})}
    resp = requests.post(post, json=wrong, timeout=10)
    assert resp.status_code == 400 and "count" in resp.json()["reason"]
    not_json = {"step_id": "inventory-1", "step_type": "inventory", "output": "{"}
    assert requests.post(post, json=not_json, timeout=10).status_code == 400
    failed = {"step_id": "inventory-2", "step_type": "inventory", "exit_code": -1, "error": "boom"}
    assert requests.post(post, json=failed, timeout=10).status_code == 204
    good = {"step_id": "inventory-3", "step_type": "inventory",
            "output": json.dumps({"hostname": "h1", "cpu": {"count": 4}})}
    assert requests.post(post, json=good, timeout=10).status_code == 204
    host = service.host(ie, HOST)
    assert json.loads(host["inventory"])["hostname"] == "h1"
    assert spec.errors("host", host) == []
    assert spec.errors("infra-env", service.api("GET", f"/v2/infra-envs/{ie}")) == []
    assert [r["step_id"] for r in service.replies(HOST)] == ["inventory-2", "inventory-3"]


def test_token_auth_for_agents_and_users(tmp_path: Path) -> None:
    with start_service(tmp_path, auth="token") as svc:
        ie = svc.create_infra_env()["id"]
        token = svc.token(ie)
        url = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts"
        no_token = requests.post(url, json={"host_id": HOST}, timeout=10)
        assert no_token.status_code == 401 and spec.errors("infra_error", no_token.json()) == []
        wrong = requests.post(url, json={"host_id": HOST}, headers={"X-Secret-Key": "x" * 40}, timeout=10)
        assert wrong.status_code == 401
        ok = requests.post(url, json={"host_id": HOST}, headers={"X-Secret-Key": token}, timeout=10)
        assert ok.status_code == 201
        assert requests.get(url, timeout=10).status_code == 401  # user API without a bearer token
        assert requests.get(url, headers={"X-Secret-Key": token}, timeout=10).status_code == 401


def test_state_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with start_service(tmp_path, db=db) as svc:
        ie = svc.create_infra_env()["id"]
        requests.post(f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, timeout=10)
    with start_service(tmp_path, db=db) as svc:
        assert [h["id"] for h in svc.hosts(ie)] == [HOST]
        assert svc.hosts(ie)[0]["status"] == "discovering-unbound"


def test_upgrade_agent_replaces_steps_when_versions_differ(tmp_path: Path) -> None:
    with start_service(tmp_path, extra=["--agent-image", "quay.io/x/agent:v2"]) as svc:
        ie = svc.create_infra_env(cluster_id=svc.create_cluster()["id"])["id"]
        url = f"{svc.url}{BASE}/v2/infra-envs/{ie}/hosts"
        requests.post(url, json={"host_id": HOST, "discovery_agent_version": "quay.io/x/agent:v1"}, timeout=10)
        steps = requests.get(f"{url}/{HOST}/instructions", headers={"discovery_agent_version": "quay.io/x/agent:v1"},
                             timeout=10).json()
        assert [s["step_type"] for s in steps["instructions"]] == ["upgrade-agent"]
        assert json.loads(steps["instructions"][0]["args"][0]) == {"agent_image": "quay.io/x/agent:v2"}
        steps = requests.get(f"{url}/{HOST}/instructions", headers={"discovery_agent_version": "quay.io/x/agent:v2"},
                             timeout=10).json()
        assert [s["step_type"] for s in steps["instructions"]] == ["inventory"]


def test_a_forbidden_hostname_is_refused(service: RefService) -> None:
    ie = service.create_infra_env()["id"]
    requests.post(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts", json={"host_id": HOST}, timeout=10)
    resp = requests.patch(f"{service.url}{BASE}/v2/infra-envs/{ie}/hosts/{HOST}", json={"host_name": "localhost"},
                          timeout=10)
    assert resp.status_code == 400 and "forbidden" in resp.json()["reason"]
    assert service.patch_host(ie, HOST, host_name="node-1")["requested_hostname"] == "node-1"
