"""api-vip-connectivity-check: the worker ignition fetched with the request's token and headers, validated and
filtered to what the service uses; a failed download is an answer (exit 0), not a step failure."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from reference_service import spec
from steps.api_vip_connectivity_check import (
    ACCEPT,
    ApiVipConnectivityCheckStep,
    filter_ignition,
    validate_ignition,
)
from steps.base import StepContext
from tests.support.loopback_http import LoopbackHTTP, serving

IGNITION = {
    "ignition": {"version": "3.2.0"},
    "storage": {"files": [{"path": "/etc/kubernetes/kubeconfig", "contents": {"source": "data:,k"}},
                          {"path": "/etc/motd", "contents": {"source": "data:,hi"}}],
                "luks": [{"name": "root", "device": "/dev/disk/by-partlabel/root"}]},
    "systemd": {"units": [{"name": "kubelet.service"}]},
}


@pytest.fixture
def ignition() -> Iterator[LoopbackHTTP]:
    """The machine config server: the Ignition for any path; ``url`` is the worker's config."""
    with serving() as srv:
        srv.fallback = (200, json.dumps(IGNITION).encode(), {})
        srv.url += "/ignition/worker"
        yield srv


def _run(request: dict[str, Any]) -> tuple[dict[str, Any], int]:
    step = ApiVipConnectivityCheckStep()
    result = step.run(step.parse_args([json.dumps(request)]), StepContext(host=Host(), config=AgentConfig()))
    output = json.loads(result.encoded_output())
    assert spec.errors("api_vip_connectivity_response", output) == []
    return output, result.exit_code


def test_the_ignition_is_fetched_with_token_and_headers_and_filtered(ignition: LoopbackHTTP) -> None:
    out, code = _run({"url": ignition.url, "ignition_endpoint_token": "secret",
                      "request_headers": [{"key": "X-Extra", "value": "1"}]})
    assert code == 0 and out["is_success"] is True and out["url"] == ignition.url
    assert json.loads(out["ignition"]) == {
        "ignition": {"version": "3.2.0"},
        "storage": {"files": [IGNITION["storage"]["files"][0]], "luks": IGNITION["storage"]["luks"]}}  # type: ignore[index]
    headers = ignition.seen[0]
    assert headers["Accept"] == ACCEPT and headers["Authorization"] == "Bearer secret" and headers["X-Extra"] == "1"


@pytest.mark.parametrize(("status", "body", "error"), [
    (404, b"{}", "bad status code: 404"),
    (200, b"", "empty ignition"),
    (200, b'{"ignition": {"version": "2.2.0"}}', "unsupported ignition version '2.2.0'"),
])
def test_a_bad_download_is_an_answer_not_a_failure(ignition: LoopbackHTTP, status: int, body: bytes,
                                                   error: str) -> None:
    ignition.fallback = (status, body, {})
    out, code = _run({"url": ignition.url})
    assert code == 0 and "is_success" not in out
    assert out["download_error"] == f"ignition file download failed: {error}"


def test_validate_ignition_refuses_what_is_not_an_ignition_3_config() -> None:
    assert validate_ignition(b'{"ignition": {"version": "3.4.0-experimental"}}')["ignition"]["version"]
    for body, why in ((b"[1]", "no ignition section"), (b"{x", "not valid JSON"),
                      (b'{"ignition": {"version": "3.2.0"}, "storage": []}', "storage must be an object")):
        with pytest.raises(ValueError, match=why):
            validate_ignition(body)


def test_filter_keeps_only_the_services_files_and_luks() -> None:
    assert filter_ignition({"ignition": {"version": "3.2.0"}, "storage": {"files": [{"path": "/etc/motd"}]}}) == {
        "ignition": {"version": "3.2.0"}}


@pytest.mark.parametrize(("request_", "message"), [
    ({"url": "ftp://x/y"}, "is not an http(s) URL"),
    ({"url": "http://x", "ca_certificate": "***"}, "ca_certificate is not base64"),
    ({"url": "http://x", "request_headers": [{"key": 1}]}, "request_headers items"),
])
def test_bad_requests_are_refused(request_: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidStepArguments, match=message.replace("(", r"\(").replace(")", r"\)")):
        ApiVipConnectivityCheckStep().parse_args([json.dumps(request_)])


def test_the_ca_is_decoded() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\n...\n"
    req = ApiVipConnectivityCheckStep().parse_args(
        [json.dumps({"url": "https://api:22623/config/worker", "ca_certificate": base64.b64encode(pem).decode()})])
    assert req.ca_pem == pem and req.token is None
