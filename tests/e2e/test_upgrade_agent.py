"""upgrade-agent with real podman pulling from a real registry on loopback, and end to end with the service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from reference_service import spec
from rules import preinstall
from rules.documents import HostView
from steps.base import StepContext
from steps.upgrade_agent import UpgradeAgentStep
from tests.support.podman import PodmanLab, needs_podman, podman_lab, run_cli
from tests.support.service import start_agent, start_service

MODEL = spec.STEP_OUTPUT_MODELS["upgrade-agent"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[PodmanLab]:
    with podman_lab(tmp_path) as found:
        yield found


@needs_podman
def test_agent_image_is_pulled_and_success_reported(lab: PodmanLab) -> None:
    image = lab.publish(f"apre-agent-{uuid.uuid4().hex[:6]}")
    reply = run_cli("upgrade-agent", {"agent_image": image}, lab.env)
    assert reply.get("exit_code", 0) == 0 and "error" not in reply, reply
    assert json.loads(reply["output"]) == {"agent_image": image, "result": "success"}
    assert lab.present(image)


@needs_podman
def test_image_only_in_local_storage_is_a_success(lab: PodmanLab) -> None:
    """No registry serves localhost/...: the pull fails, but the runner would start the local image, so the
    service must hear success (else it asks again on every poll, forever)."""
    image = lab.build(f"apre-agent-{uuid.uuid4().hex[:6]}")
    reply = run_cli("upgrade-agent", {"agent_image": image}, lab.env)
    assert reply.get("exit_code", 0) == 0 and "error" not in reply, reply
    assert json.loads(reply["output"]) == {"agent_image": image, "result": "success"}


@needs_podman
def test_unavailable_image_is_a_failure_result_with_exit_code_0(lab: PodmanLab) -> None:
    image = f"{lab.registry}/apre-agent-missing:2"
    reply = run_cli("upgrade-agent", {"agent_image": image}, lab.env)
    assert reply.get("exit_code", 0) == 0
    assert json.loads(reply["output"]) == {"agent_image": image, "result": "failure"}
    assert "manifest unknown" in reply["error"]


@needs_podman
def test_service_upgrades_an_outdated_agent_which_then_exits(lab: PodmanLab, tmp_path: Path) -> None:
    image = lab.publish(f"apre-agent-{uuid.uuid4().hex[:6]}")
    with start_service(tmp_path, extra=["--agent-image", image]) as svc:
        ie = svc.create_infra_env()["id"]
        with start_agent(svc.url, ie, env=lab.env, log=tmp_path / "agent.log",
                         state_dir=tmp_path / "state") as agent:
            agent.wait(timeout=90)  # exits after posting a successful upgrade-agent reply
            hosts = svc.hosts(ie)
            assert len(hosts) == 1
            replies = svc.replies(hosts[0]["id"], "upgrade-agent")
        assert replies, agent.log
        assert json.loads(replies[-1]["output"]) == {"agent_image": image, "result": "success"}
        assert spec.errors(MODEL, json.loads(replies[-1]["output"])) == []
    assert lab.present(image)
    # what systemd/agent-container.service reads to start the new image on its next start
    assert (tmp_path / "state" / "agent-image.env").read_text() == f"AGENT_VERSION={image}\n"


def test_host_without_podman_reports_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    step = UpgradeAgentStep()
    ctx = StepContext(host=Host.at("/"), config=AgentConfig())
    result = step.run(step.parse_args(['{"agent_image": "quay.io/edge-infrastructure/agent:v2"}']), ctx)
    assert result.exit_code == 0
    assert result.output == {"agent_image": "quay.io/edge-infrastructure/agent:v2", "result": "failure"}
    assert "podman is not installed" in result.error


@pytest.mark.parametrize("raw", ['{"agent_image": "-q"}', '{"agent_image": ""}', "{}", '{"agent_image": 1}', "[]"])
def test_malformed_arguments_are_refused(raw: str) -> None:
    with pytest.raises(InvalidStepArguments):
        UpgradeAgentStep().parse_args([raw])


def test_service_records_the_outcome_as_an_event() -> None:
    events: list[tuple[str, str]] = []

    class Service:
        def event(self, message: str, host: dict[str, Any], severity: str = "info") -> None:
            events.append((severity, message))

    view = HostView(host={"id": "h"}, infra_env={}, service=Service())
    preinstall.upgrade_reply(view, {"agent_image": "q/a:2", "result": "success"}, {"exit_code": 0})
    preinstall.upgrade_reply(view, {"agent_image": "q/a:3", "result": "failure"}, {"exit_code": 0})
    assert events == [("info", "Host h: agent upgraded to q/a:2; it restarts into it"),
                      ("warning", "Host h: agent upgrade to q/a:3 failed")]
