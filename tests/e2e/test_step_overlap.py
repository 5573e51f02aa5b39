"""Every instruction gets exactly one reply, also when a run of its step type is still going (issue 14, item 2;
docs/step-overlap.md)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import overlap
from agent.config import AgentConfig
from agent.dispatch import Dispatcher
from agent.runner import Reply, StepRunner
from common.answers import Instruction
from steps import registry
from tests.support.hostile import Answer, HostileService
from tests.support.service import start_agent

pytestmark = pytest.mark.no_child_left  # the fork servers of in-process runners end with their tests

HOST_ID = "11111111-2222-3333-4444-555555555555"
IE = "22222222-3333-4444-5555-666666666666"


def _echo(step_id: str, message: str, sleep: float = 0) -> dict[str, object]:
    return {"step_id": step_id, "step_type": "sample-echo", "args": [json.dumps({"message": message, "sleep": sleep})]}


def test_overlapping_instructions_are_joined_or_queued_and_each_answered_once(
        tmp_path: Path, sample_plugins: Path) -> None:
    hostile = HostileService()
    hostile.answer(Answer.steps([_echo("a1", "A", 3)], seconds=1),
                   Answer.steps([_echo("a2", "A", 3), _echo("b1", "B"),
                                 {"step_id": "bad", "step_type": "sample-echo", "args": ["{not json"]}]))
    try:
        with start_agent(hostile.url, IE, args=["--host-id", HOST_ID], log=tmp_path / "agent.log") as agent:
            replies = {i: hostile.wait_reply(i, timeout=40) for i in ("a1", "a2", "b1", "bad")}
            time.sleep(1)
            assert agent.alive()
            log = agent.log
    finally:
        hostile.close()
    ids = [r["step_id"] for r in hostile.replies]
    assert sorted(ids) == ["a1", "a2", "b1", "bad"], ids
    assert json.loads(replies["a1"]["output"])["echo"] == json.loads(replies["a2"]["output"])["echo"] == "A"
    assert json.loads(replies["b1"]["output"])["echo"] == "B"
    assert ids.index("b1") > ids.index("a1"), "the queued run starts after the first"
    assert replies["bad"]["exit_code"] == -1 and "not valid JSON" in replies["bad"]["error"]
    assert "answered by the run of a1" in log and "queued after a1" in log


@pytest.fixture
def dispatcher(sample_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Dispatcher, list[Reply]]]:
    monkeypatch.syspath_prepend(str(sample_plugins))
    registry.available.cache_clear()
    replies: list[Reply] = []
    lock = threading.Lock()

    def deliver(reply: Reply, dedupe: bool) -> None:
        with lock:
            replies.append(reply)

    runner = StepRunner(AgentConfig())
    d = Dispatcher(runner, deliver, lambda reply, _s: deliver(reply, True), threading.Event())
    try:
        yield d, replies
    finally:
        for thread in d.threads():  # the steps end first: a server stopped under them would be started again
            thread.join(30)
        runner.close()  # its fork server
        registry.available.cache_clear()


def _wait(replies: list[Reply], count: int) -> dict[str, Reply]:
    deadline = time.monotonic() + 30
    while len(replies) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(replies) == count, replies
    return {r.step_id: r for r in replies}


@pytest.mark.parametrize("kind", [overlap.Overlap.IDLE, overlap.Overlap.REFUSE])
def test_idle_and_refuse_types_answer_at_once_and_still_check_arguments(
        dispatcher: tuple[Dispatcher, list[Reply]], monkeypatch: pytest.MonkeyPatch, kind: overlap.Overlap) -> None:
    d, replies = dispatcher
    monkeypatch.setitem(overlap.POLICY, "sample-echo", kind)
    first = (json.dumps({"message": "first", "sleep": 4}),)
    d.dispatch(Instruction("sample-echo", "run", first))
    d.dispatch(Instruction("sample-echo", "same", first))
    d.dispatch(Instruction("sample-echo", "other", (json.dumps({"message": "other"}),)))
    d.dispatch(Instruction("sample-echo", "bad", ("{not json",)))
    got = _wait(replies, 3)
    assert "run" not in got, "the overlapping instructions are answered while the first still runs"
    assert got["bad"].exit_code == -1 and "not valid JSON" in got["bad"].error
    for step_id in ("same", "other"):
        if kind is overlap.Overlap.IDLE:
            assert (got[step_id].exit_code, got[step_id].output, got[step_id].error) == (0, "", "")
        else:
            assert got[step_id].exit_code == -1 and "already running (step run)" in got[step_id].error
    got = _wait(replies, 4)
    assert json.loads(got["run"].output)["echo"] == "first"


def test_upgrade_agent_busy_answer_is_the_go_agents() -> None:
    args = (json.dumps({"agent_image": "quay.io/x/agent:v2"}),)
    reply = overlap.busy_reply("upgrade-agent", "u2", args, "u1")
    assert (reply.exit_code, json.loads(reply.output)) == (0, {"agent_image": "quay.io/x/agent:v2"})
