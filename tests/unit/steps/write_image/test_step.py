"""The write-image step's order and reporting, where no disk is needed: a refused target is reported to the
service as the installer's Failed stage, before anything is fetched; SIGTERM interrupts a write in progress.
(Whole writes onto loop devices: tests/e2e/test_write_image.py.)"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from agent.config import AgentConfig
from common.errors import UnsafeTarget
from common.host import Host
from steps.base import StepContext
from steps.write_image.errors import Interrupted
from steps.write_image.step import WriteImageStep, _sigterm_aborts
from tests.support.install_images import RecordingServer

ENV, HOST = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def test_a_refused_target_is_reported_as_failed_and_nothing_is_fetched(
        server: RecordingServer, tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "sda").write_bytes(bytes(4096))  # a file, not a block device
    step = WriteImageStep()
    params = step.parse_args([json.dumps({
        "image_url": server.url + "/image.raw", "target_device": "/dev/sda", "image_sha256": "a" * 64,
        "infra_env_id": ENV, "host_id": HOST, "role": "worker", "timeout_seconds": 90})])
    assert step.timeout(params) == 90
    ctx = StepContext(host=Host(tmp_path), config=AgentConfig(url=server.url, token="t"))
    with pytest.raises(UnsafeTarget):
        step.run(params, ctx)
    progress = server.progress()
    assert progress[0] == "Starting installation worker"
    assert progress[-1].startswith("Failed ") and len(progress) == 2
    assert not any(str(r["path"]).endswith("/image.raw") for r in server.requests)


def test_sigterm_during_a_write_interrupts_it_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="interrupted by SIGTERM") as caught, _sigterm_aborts():
        signal.raise_signal(signal.SIGTERM)  # the handler runs before this returns
    assert caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == before
