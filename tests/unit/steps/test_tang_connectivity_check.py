"""tang-connectivity-check: every tang server's advertisement fetched and reported; any failure fails the step
with go-multierror's text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from reference_service import spec
from steps.base import StepContext, StepResult
from steps.tang_connectivity_check import TangConnectivityCheckStep, multierror
from tests.support.loopback_http import LoopbackHTTP, serving

ADV = {"payload": "eyJrZXlzIjpbXX0", "protected": "eyJhbGciOiJFUzUxMiJ9", "signature": "c2ln"}


@pytest.fixture
def tang() -> Iterator[LoopbackHTTP]:
    with serving() as srv:
        srv.answer("/adv/thumb", json.dumps(ADV).encode())
        yield srv


def _run(servers: list[dict[str, str]]) -> StepResult:
    step = TangConnectivityCheckStep()
    args = [json.dumps({"tang_servers": json.dumps(servers)})]
    return step.run(step.parse_args(args), StepContext(host=Host(), config=AgentConfig()))


def test_advertisements_are_reported(tang: LoopbackHTTP) -> None:
    tang.answer("/adv/other", json.dumps({"payload": "p", "signatures": [
        {"protected": "a", "signature": "b"}, {"protected": "c", "signature": ""}]}).encode())
    result = _run([{"url": tang.url + "/", "thumbprint": "thumb"}, {"url": tang.url, "thumbprint": "other"}])
    output = json.loads(result.encoded_output())
    assert result.exit_code == 0 and spec.errors("tang_connectivity_response", output) == []
    assert output == {"is_success": True, "tang_server_response": [
        {"payload": ADV["payload"], "signatures": [{"protected": ADV["protected"], "signature": ADV["signature"]}],
         "tang_url": f"{tang.url}/adv/thumb"},
        {"payload": "p", "signatures": [{"protected": "a", "signature": "b"}, {"protected": "c"}],
         "tang_url": f"{tang.url}/adv/other"}]}


def test_any_failing_server_fails_the_step_with_every_error(tang: LoopbackHTTP) -> None:
    tang.answer("/adv/empty", b"  ")
    tang.answer("/adv/list", b"[]")
    result = _run([{"url": tang.url, "thumbprint": "thumb"}, {"url": tang.url, "thumbprint": "missing"},
                   {"url": tang.url, "thumbprint": "empty"}, {"url": tang.url, "thumbprint": "list"}])
    assert result.exit_code == -1 and json.loads(result.encoded_output()) == {"tang_server_response": None}
    assert result.error == multierror([f"{tang.url}/adv/missing: unexpected status 404",
                                       f"{tang.url}/adv/empty: empty response",
                                       f"{tang.url}/adv/list: response is not a JWS object"])


def test_multierror_is_go_multierrors_text() -> None:
    assert multierror(["x"]) == "1 error occurred:\n\t* x\n\n"
    assert multierror(["x", "y"]) == "2 errors occurred:\n\t* x\n\t* y\n\n"


@pytest.mark.parametrize(("servers", "message"), [
    ('[{"url": 5}]', "needs a url string"),
    ('[{"url": "file:///x"}]', "is not an http"),
    ('[{"url": "http://t", "thumbprint": 1}]', "thumbprint of http://t must be a string"),
    ("{}", "must be a JSON array"),
])
def test_bad_requests_are_refused(servers: str, message: str) -> None:
    with pytest.raises(InvalidStepArguments, match=message):
        TangConnectivityCheckStep().parse_args([json.dumps({"tang_servers": servers})])
