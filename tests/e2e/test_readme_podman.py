"""The README's podman lines, run as a person copies them, on a machine whose open-files hard limit is below
podman's default (this CI sandbox: 20000): as printed they stop with "error setting rlimit type 7"; with the
--ulimit flags the README says to add they run. The image is the tests' own (tests/support/image.py: built from
this tree, or reused when its inputs are unchanged), so this never skips for want of an image."""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.image import BUILD_TIMEOUT, IMAGE, BuiltImage, cached_image
from tests.support.paths import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (rootful podman, as the README runs it)"),
    pytest.mark.skipif(not (shutil.which("podman") and shutil.which("buildah")), reason="needs podman and buildah"),
    pytest.mark.timeout(BUILD_TIMEOUT + 600),
]
#: podman's default open-files limit for a rootful container (containers.conf's default_ulimits unset).
PODMAN_DEFAULT_NOFILE = 1048576


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """The tests' image, with podman's own default limits: the tests' containers.conf sets default_ulimits
    (every other test runs containers in this sandbox), which would hide what a person meets."""
    with cached_image() as built:
        conf = Path(built.env["CONTAINERS_CONF"]).read_text()
        plain = tmp_path_factory.mktemp("podman-conf") / "containers.conf"
        plain.write_text("".join(line for line in conf.splitlines(keepends=True)
                                 if not line.startswith("default_ulimits")))
        yield BuiltImage(built.ref, {**built.env, "CONTAINERS_CONF": str(plain)}, built.work, built.build_output,
                         built.build_seconds)


def _readme_podman_lines() -> tuple[list[list[str]], list[str]]:
    """Each ``podman run`` command of the README's podman section (continuation lines joined), and the flags
    the README says to add after ``podman run`` where the hard limit is low."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\* \*\*podman\*\*.*?```sh\n(.*?)```\n\n(.*?)\n\n", readme, re.S)
    assert block, "the README has a podman section with a sh block"
    commands = [shlex.split(cmd) for cmd in block.group(1).replace("\\\n", " ").splitlines() if cmd.strip()]
    flags = re.search(r"add\s+`(--ulimit nofile=\S+ --ulimit nproc=\S+)`", block.group(2))
    assert flags, "the README says which --ulimit flags to add"
    return commands, flags.group(1).split()


def _run(image: BuiltImage, argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert argv[:2] == ["podman", "run"] and IMAGE in argv
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env={**os.environ, **image.env})


def test_the_readmes_inventory_line_runs_with_the_ulimit_flags_it_gives(image: BuiltImage) -> None:
    commands, flags = _readme_podman_lines()
    inventory = next(argv for argv in commands if argv[-1] == "inventory")
    out = _run(image, [*inventory[:2], *flags, *inventory[2:]])
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["hostname"]


def test_as_printed_the_line_stops_with_the_error_the_readme_names_where_the_limit_is_low(image: BuiltImage) -> None:
    commands, _ = _readme_podman_lines()
    inventory = next(argv for argv in commands if argv[-1] == "inventory")
    out = _run(image, inventory)
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < PODMAN_DEFAULT_NOFILE:
        assert out.returncode != 0
        assert "error setting rlimit type 7" in out.stderr
    else:  # a machine with podman's default limit or more: the line works as printed
        assert out.returncode == 0, out.stderr[-2000:]
