"""write-image's Ignition: the one given, else the host's own fetched from the service and checked before the
first byte is written; and whether the boot partition is touched at all."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from steps.base import StepContext
from steps.write_image.errors import WriteFailed
from steps.write_image.params import WriteImageParams
from steps.write_image.placement import ignition_for, needs_placement
from tests.support.install_images import RecordingServer

ENV, HOST = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def _params(**kw: object) -> WriteImageParams:
    return WriteImageParams(image_url="file:///i", target_device="/dev/sda", **kw)  # type: ignore[arg-type]


def _ctx(url: str, **kw: str) -> StepContext:
    return StepContext(host=Host(), config=AgentConfig(url=url, token="t", **kw))  # type: ignore[arg-type]


def test_the_given_ignition_is_used_as_is() -> None:
    assert ignition_for(_params(ignition='{"ignition":{"version":"3.2.0"}}'), _ctx("http://127.0.0.1:9")) == \
        b'{"ignition":{"version":"3.2.0"}}'
    assert ignition_for(_params(), _ctx("http://127.0.0.1:9")) is None


def test_the_hosts_own_ignition_comes_from_the_service(server: RecordingServer) -> None:
    got = ignition_for(_params(ignition_from_service=True, host_id=HOST), _ctx(server.url, infra_env_id=ENV))
    assert got == server.ignition
    assert server.requests[-1]["path"] == f"/api/assisted-install/v2/infra-env/{ENV}/hosts/{HOST}/downloads/ignition"


def test_a_bad_ignition_from_the_service_fails_before_any_write(server: RecordingServer) -> None:
    server.ignition = b"<html>login</html>"
    with pytest.raises(WriteFailed):
        ignition_for(_params(ignition_from_service=True, infra_env_id=ENV, host_id=HOST), _ctx(server.url))


def test_the_service_ignition_needs_the_hosts_ids() -> None:
    with pytest.raises(InvalidStepArguments, match="ignition_from_service needs infra_env_id and host_id"):
        ignition_for(_params(ignition_from_service=True, infra_env_id=ENV), _ctx("http://127.0.0.1:9"))


def test_the_boot_partition_is_touched_only_when_there_is_something_to_place() -> None:
    assert not needs_placement(_params(), None)
    assert needs_placement(_params(), b"{}")
    assert needs_placement(_params(append_kargs=["console=ttyS0"]), None)
    assert needs_placement(_params(delete_kargs=["quiet"]), None)
