"""The README's podman line, run as a person copies it, on a machine whose open-files hard limit is below
podman's default (this CI sandbox: 20000): with the README's --ulimit flags it starts."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.paths import ROOT

IMAGE = "localhost/assisted-agent:latest"


def _image_present() -> bool:
    if shutil.which("podman") is None:
        return False
    return subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(not _image_present(), reason=f"needs podman and {IMAGE} (bash container/build.sh)")
def test_the_readmes_podman_run_starts_with_the_ulimit_flags_it_gives() -> None:
    readme = (ROOT / "README.md").read_text()
    flags = re.search(r"add\s+`(--ulimit nofile=\S+ --ulimit nproc=\S+)`", readme)
    assert flags, "the README says which --ulimit flags to add"
    argv = ["podman", "run", "--rm", *flags.group(1).split(), "--privileged", "--net=host", "--pid=host",
            "--uts=host", IMAGE, "agent", "--version"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("agent ")
