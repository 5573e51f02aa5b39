"""agent.state: private files whatever the umask, no symlink followed, a bounded history, one agent per
state directory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agent.runner import Reply
from agent.state import History, StateLock, write_private
from common.errors import StateLocked
from common.limits import HISTORY_MAX_BYTES, HISTORY_MAX_OUTPUT_CHARS


def test_files_are_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        size = write_private(tmp_path / "state" / "f", "abc")
        size = write_private(tmp_path / "state" / "f", "de", append=True)
    finally:
        os.umask(old)
    assert size == 5 and (tmp_path / "state" / "f").read_text() == "abcde"
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "f").stat().st_mode) == 0o600
    (tmp_path / "state" / "g").write_text("old")
    (tmp_path / "state" / "g").chmod(0o644)  # a file an older agent (or a person) left readable
    os.chmod(tmp_path / "state", 0o755)
    write_private(tmp_path / "state" / "g", "new")
    assert stat.S_IMODE((tmp_path / "state" / "g").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_a_symlink_in_place_of_a_state_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "history.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        write_private(tmp_path / "state" / "history.jsonl", "x")
    assert target.read_text() == "keep"


def test_history_clips_outputs_and_rotates_past_its_bound(tmp_path: Path) -> None:
    history = History(tmp_path)
    big = "x" * (HISTORY_MAX_OUTPUT_CHARS * 2)
    history.record(Reply("step-1", "inventory", 0, big))
    entry = json.loads((tmp_path / "history.jsonl").read_text())
    assert entry["step_id"] == "step-1" and len(entry["output"]) <= HISTORY_MAX_OUTPUT_CHARS
    for i in range(HISTORY_MAX_BYTES // HISTORY_MAX_OUTPUT_CHARS + 2):
        history.record(Reply(f"step-{i}", "inventory", 0, big))
    assert (tmp_path / "history.jsonl.1").exists()
    total = sum(p.stat().st_size for p in tmp_path.glob("history.jsonl*"))
    assert total <= 2 * HISTORY_MAX_BYTES + 2 * HISTORY_MAX_OUTPUT_CHARS


def test_history_without_a_directory_records_nothing() -> None:
    History(None).record(Reply("s", "t"))  # no state directory: nothing to write, nothing raised


def test_one_agent_per_state_directory(tmp_path: Path) -> None:
    lock = StateLock.acquire(tmp_path / "state")
    assert (tmp_path / "state" / "agent.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(StateLocked, match=f"another agent \\(pid {os.getpid()}\\) is running"):
        StateLock.acquire(tmp_path / "state")
    lock.release()
    StateLock.acquire(tmp_path / "state").release()
