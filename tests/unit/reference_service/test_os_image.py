"""reference_service.os_image: the configured OS image and its SHA-256, computed again when the file changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from reference_service.os_image import os_image


def test_the_image_and_its_digest(tmp_path: Path) -> None:
    image = tmp_path / "rhcos.raw"
    image.write_bytes(b"a" * 5_000_000)
    assert os_image(str(image)) == (image, hashlib.sha256(b"a" * 5_000_000).hexdigest())
    image.write_bytes(b"b" * 10)  # a new version of the file: a new digest, not the remembered one
    os.utime(image, ns=(1, 1))
    assert os_image(str(image)) == (image, hashlib.sha256(b"b" * 10).hexdigest())


def test_no_image_configured_or_missing(tmp_path: Path) -> None:
    assert os_image("") is None
    assert os_image(str(tmp_path / "missing.raw")) is None
