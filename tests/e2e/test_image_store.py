"""The tests' persistent image store (tests.support.image) survives being copied to another path: podman's
database remembers where it was made and used the old path silently (every clone whose ``.image-cache`` was
copied from another one saw that clone's images, and none once it was deleted: four image tests failed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.image import store_config

pytestmark = pytest.mark.skipif(not shutil.which("podman"), reason="needs podman")


def graphroot(env: dict[str, str]) -> str:
    return subprocess.run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env}, check=True).stdout.strip()


def test_a_copied_store_uses_its_own_path(tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert graphroot(store_config(first)) == str(first / "storage")  # podman made its database there
    copy = tmp_path / "copy"
    shutil.copytree(first, copy, symlinks=True)
    shutil.rmtree(first)
    assert graphroot(store_config(copy)) == str(copy / "storage")
