"""The step process (agent.step_process) gets every setting in its request, and reads none from its environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.runner import StepRunner
from steps import registry

pytestmark = pytest.mark.no_child_left  # the fork servers of in-process runners end with their tests


@pytest.fixture
def plugins_here(sample_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The sample plugins visible to this process's registry too (the runner checks the step type there)."""
    monkeypatch.syspath_prepend(str(sample_plugins))
    registry.available.cache_clear()
    yield
    registry.available.cache_clear()


def test_the_child_has_the_requests_settings_not_the_environments(
        plugins_here: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULL_SECRET_TOKEN", "from-the-environment")
    monkeypatch.setenv("AGENT_STATE_DIR", str(tmp_path / "from-the-environment"))
    monkeypatch.setenv("DRY_HOST_ID", "00000000-0000-0000-0000-00000000000e")
    config = AgentConfig(url="http://127.0.0.1:9", token="from-the-request", state_dir=str(tmp_path / "state"),
                         dry_run=True, force_id="00000000-0000-0000-0000-000000000001", chronyc_timeout=2.5)
    runner = StepRunner(config)
    try:
        reply = runner.run("sample-settings", "settings-1", [])
    finally:
        runner.close()  # its fork server
    assert reply.exit_code == 0, reply.error
    seen = json.loads(reply.output)
    assert seen["token"] == "from-the-request"
    assert seen["state_dir"] == str(tmp_path / "state")
    assert seen["force_id"] == "00000000-0000-0000-0000-000000000001" and seen["chronyc_timeout"] == 2.5
    assert AgentConfig.from_dict(seen) == config


def test_the_token_is_never_in_a_configs_repr() -> None:
    assert "sekrit" not in repr(AgentConfig(token="sekrit"))
