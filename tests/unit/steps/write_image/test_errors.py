"""write-image's errors: a failed write and an interrupted one are step errors with their own codes, and an
interrupted write ends with the exit code of a SIGTERM'd process, as the installer's does."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import AgentError, StepError
from steps.write_image.errors import Interrupted, WriteFailed
from steps.write_image.sources import FileSource


def test_codes_and_exit_codes() -> None:
    assert issubclass(WriteFailed, StepError) and issubclass(Interrupted, StepError)
    assert (WriteFailed("x").code, WriteFailed("x").exit_code) == ("write-image-failed", -1)
    assert (Interrupted("x").code, Interrupted("x").exit_code) == ("write-image-interrupted", 143)


def test_a_failure_of_a_stage_is_a_write_failed_with_message_and_hint(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as caught:
        FileSource(str(tmp_path / "missing.raw"))
    assert type(caught.value) is WriteFailed
    assert caught.value.message == f"cannot open the image {tmp_path / 'missing.raw'}: No such file or directory"
