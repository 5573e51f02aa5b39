"""Fuzzing the running reference service over HTTP: bodies generated from the spec's own models
(hypothesis-jsonschema) and arbitrary JSON, for every endpoint that takes one. The bar: never a 500.

Examples are bounded (``FUZZ_EXAMPLES``, default 40 per endpoint and kind) so the suite stays fast in CI.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from reference_service import spec
from reference_service.orchestrator import BASE
from tests.support.service import RefService, start_service

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES_SERVICE", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
HOST = "11111111-2222-3333-4444-555555555555"

#: (method, path with {cluster}/{ie}/{host}, the spec model of its body)
ENDPOINTS = [
    ("POST", "/v2/infra-envs/{ie}/hosts", "host-create-params"),
    ("POST", "/v2/infra-envs/{ie}/hosts/{host}/instructions", "step-reply"),
    ("PUT", "/v2/infra-envs/{ie}/hosts/{host}/progress", "host-progress"),
    ("PUT", "/v2/infra-envs/{ie}/hosts/{host}/logs-progress", "logs-progress-params"),
    ("POST", "/v2/clusters", "cluster-create-params"),
    ("PATCH", "/v2/clusters/{cluster}", "v2-cluster-update-params"),
    ("POST", "/v2/infra-envs", "infra-env-create-params"),
    ("PATCH", "/v2/infra-envs/{ie}/hosts/{host}", "host-update-params"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RefService, dict[str, str]]]:
    with start_service(tmp_path_factory.mktemp("fuzz")) as svc:
        cluster = svc.create_cluster(control_plane_count=1)
        ie = svc.create_infra_env(cluster_id=cluster["id"])
        svc.api("POST", f"/v2/infra-envs/{ie['id']}/hosts", json={"host_id": HOST}, expected=201)
        yield svc, {"cluster": cluster["id"], "ie": ie["id"], "host": HOST}
        svc.session.close()


def _schema(definition: str) -> dict[str, Any]:
    """A self-contained JSON schema of a spec model, formats the generator cannot honour dropped."""
    definitions = copy.deepcopy(spec.load_spec()["definitions"])
    return {"$ref": f"#/definitions/{definition}", "definitions": definitions}


def _send(svc: RefService, method: str, path: str, body: Any) -> None:
    resp = svc.session.request(method, svc.url + BASE + path, data=json.dumps(body), timeout=30,
                               headers={"Content-Type": "application/json"})
    assert resp.status_code < 500, f"{method} {path} {json.dumps(body)[:500]} -> {resp.status_code} {resp.text[:500]}"


@pytest.mark.parametrize(("method", "path", "model"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_spec_shaped_bodies_never_give_a_500(live: tuple[RefService, dict[str, str]], method: str, path: str,
                                             model: str) -> None:
    svc, ids = live
    try:
        bodies = from_schema(_schema(model))
    except Exception as exc:  # a schema hypothesis-jsonschema cannot express: fuzz it with arbitrary JSON only
        pytest.skip(f"{model}: {exc}")

    @FUZZ
    @given(bodies)
    def check(body: Any) -> None:
        _send(svc, method, path.format(**ids), body)

    check()


@pytest.mark.parametrize(("method", "path", "model"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_arbitrary_bodies_and_ids_never_give_a_500(live: tuple[RefService, dict[str, str]], method: str, path: str,
                                                   model: str) -> None:
    svc, ids = live
    odd_id = st.sampled_from(["x", "0" * 40, "urn:uuid:" + HOST, "%00", "..", "a" * 300]) | st.text(
        st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/?#%"), min_size=1, max_size=20)

    @FUZZ
    @given(json_values, st.sampled_from(sorted(ids)), st.booleans(), odd_id)
    def check(body: Any, key: str, break_id: bool, odd: str) -> None:
        chosen = {**ids, key: odd} if break_id else ids
        _send(svc, method, path.format(**chosen), body)

    check()


def test_fuzzed_service_is_still_healthy(live: tuple[RefService, dict[str, str]], tmp_path: Path) -> None:
    svc, ids = live
    assert svc.proc.poll() is None
    assert "Traceback" not in svc.log.read_text(errors="replace")
    assert svc.host(ids["ie"], HOST)["id"] == HOST
