"""reference_service.os_image: the configured OS image and its SHA-256, computed again when the file changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from reference_service.os_image import OS_IMAGE_ENV, os_image


def test_the_image_and_its_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "rhcos.raw"
    image.write_bytes(b"a" * 5_000_000)
    monkeypatch.setenv(OS_IMAGE_ENV, str(image))
    assert os_image() == (image, hashlib.sha256(b"a" * 5_000_000).hexdigest())
    image.write_bytes(b"b" * 10)  # a new version of the file: a new digest, not the remembered one
    os.utime(image, ns=(1, 1))
    assert os_image() == (image, hashlib.sha256(b"b" * 10).hexdigest())


def test_no_image_configured_or_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OS_IMAGE_ENV, raising=False)
    assert os_image() is None
    monkeypatch.setenv(OS_IMAGE_ENV, str(tmp_path / "missing.raw"))
    assert os_image() is None
