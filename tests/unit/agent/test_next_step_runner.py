"""agent.next_step_runner: the image's poll loop takes the ids the host's agent registered with, and leaves
registering again to that agent (it stops instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.identity import derive_host_id
from agent.next_step_runner import NextStepRunner
from agent.notify import Notifier
from common.host import Host
from tests.support.paths import FIXTURES

ENV = "11111111-1111-1111-1111-111111111111"
HOST = "22222222-2222-2222-2222-222222222222"


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_STATE_DIR", str(tmp_path / "state"))


def _runner(**config: object) -> NextStepRunner:
    cfg = AgentConfig(url="http://127.0.0.1:9", infra_env_id=ENV, **config)  # type: ignore[arg-type]
    return NextStepRunner(cfg, notifier=Notifier(""), host=Host.at(FIXTURES / "kvm-vm"))


def test_the_given_ids_are_used_and_a_second_registration_stops_the_loop() -> None:
    runner = _runner(host_id=HOST)
    try:
        assert runner._register() is True
        assert (runner.host_id, runner.infra_env_id) == (HOST, ENV) and not runner.stop.is_set()
        assert runner._register() is False
        assert runner.stop.is_set()
    finally:
        runner.runner.close()


def test_without_a_host_id_it_is_derived_as_the_host_agent_did() -> None:
    runner = _runner()
    try:
        assert runner._register() is True
        assert runner.host_id == derive_host_id(Host.at(FIXTURES / "kvm-vm"))[0]
    finally:
        runner.runner.close()
