"""steps.lib.progress: installation progress PUT to the service; refusals remembered, never raised."""

from __future__ import annotations

import json

from agent.config import AgentConfig
from common.host import Host
from steps.base import StepContext
from steps.lib.progress import WRITING, ProgressReporter
from tests.support.install_images import RecordingServer

ENV, HOST = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def _reporter(server: RecordingServer, *, host_id: str | None = HOST) -> ProgressReporter:
    ctx = StepContext(host=Host(), config=AgentConfig(url=server.url, token="t"))
    return ProgressReporter(ctx, ENV, host_id)


def _bodies(server: RecordingServer) -> list[dict[str, str]]:
    return [json.loads(r["body"]) for r in server.requests  # type: ignore[arg-type]
            if str(r["path"]).endswith(f"/v2/infra-envs/{ENV}/hosts/{HOST}/progress")]


def test_stages_are_put_with_their_info(server: RecordingServer) -> None:
    progress = _reporter(server)
    assert progress.stage("Starting installation") is True
    assert progress.stage("Installing", "rhcos") is True
    assert _bodies(server) == [{"current_stage": "Starting installation"},
                               {"current_stage": "Installing", "progress_info": "rhcos"}]
    assert progress.sent == [("Starting installation", ""), ("Installing", "rhcos")] and progress.errors == []


def test_percent_is_sent_every_five_and_always_at_100(server: RecordingServer) -> None:
    progress = _reporter(server)
    for value in (0, 1, 4, 5, 7, 12, 99, 100, 100, 130):
        progress.percent(value)
    assert [i for s, i in progress.sent if s == WRITING] == ["0%", "5%", "12%", "99%", "100%"]


def test_a_refused_update_is_remembered_and_not_raised(server: RecordingServer) -> None:
    server.progress_status = 409
    progress = _reporter(server)
    assert progress.stage("Rebooting") is False
    assert progress.sent == [] and len(progress.errors) == 1 and progress.errors[0].startswith("Rebooting: ")


def test_without_a_host_id_nothing_is_sent(server: RecordingServer) -> None:
    progress = _reporter(server, host_id=None)
    assert progress.enabled is False and progress.stage("Installing") is False
    assert server.requests == []
