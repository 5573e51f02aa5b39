"""The two ways a write ends badly, apart from a refusal (``UnsafeTarget``, from the disk checks)."""

from __future__ import annotations

from common.errors import StepError


class WriteFailed(StepError):
    """The image could not be written as asked (checksum, short download, disk full, I/O error)."""

    code = "write-image-failed"


class Interrupted(StepError):
    code = "write-image-interrupted"
    exit_code = 143
