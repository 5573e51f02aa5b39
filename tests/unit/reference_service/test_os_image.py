"""reference_service.os_image: the configured OS image and its SHA-256, computed again when the file changes,
remembered by the object that owns it (the service instance), not by the module."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from reference_service.os_image import OsImages


def test_the_image_and_its_digest(tmp_path: Path) -> None:
    image = tmp_path / "rhcos.raw"
    image.write_bytes(b"a" * 5_000_000)
    images = OsImages()
    assert images.find(str(image)) == (image, hashlib.sha256(b"a" * 5_000_000).hexdigest())
    image.write_bytes(b"b" * 10)  # a new version of the file: a new digest, not the remembered one
    os.utime(image, ns=(1, 1))
    assert images.find(str(image)) == (image, hashlib.sha256(b"b" * 10).hexdigest())


def test_the_digest_is_computed_once_per_version_and_per_owner(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "rhcos.raw"
    image.write_bytes(b"a" * 1000)
    hashed: list[int] = []
    real = hashlib.sha256

    def counting() -> Any:
        hashed.append(1)
        return real()

    monkeypatch.setattr(hashlib, "sha256", counting)
    first, second = OsImages(), OsImages()
    assert first.find(str(image)) == first.find(str(image))
    assert len(hashed) == 1  # remembered by its owner
    second.find(str(image))
    assert len(hashed) == 2  # another owner (another service in the process) shares nothing


def test_no_image_configured_or_missing(tmp_path: Path) -> None:
    assert OsImages().find("") is None
    assert OsImages().find(str(tmp_path / "missing.raw")) is None
