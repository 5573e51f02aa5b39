"""The image's /usr/bin/agent, copied out alone, runs on a Linux whatever its C library (issue 24, item 1).

The stock ``agent.service`` copies ``/usr/bin/agent`` out of the image (``cp /usr/bin/agent /hostbin``) and runs it
on the discovery host: RHCOS 9 (glibc 2.34), older and other systems. The copied file is taken from the built
image and run inside two roots: one with nothing but it (``/proc``, ``/sys``, ``/dev``, ``/tmp`` mounted) and a
Debian bullseye root (glibc 2.31, older than RHCOS 9's). In each it answers ``--version``, reports the
inventory, and registers with the reference service (over loopback: a chroot shares this network namespace).
Its ``--help`` offers only what it can do: steps run in the image, and ``agent step`` says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.image import BUILD_TIMEOUT, cached_image
from tests.support.roots import DEBOOTSTRAP_TIMEOUT, bullseye_tarball, chroot_root
from tests.support.service import RefService, start_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mounts)"),
    pytest.mark.skipif(not (shutil.which("buildah") and shutil.which("debootstrap")),
                       reason="needs buildah and debootstrap"),
    pytest.mark.timeout(BUILD_TIMEOUT + DEBOOTSTRAP_TIMEOUT + 600),
]


@pytest.fixture(scope="module")
def host_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/usr/bin/agent of the built image, copied out as ExecStartPre does."""
    out = tmp_path_factory.mktemp("hostbin") / "agent"
    with cached_image() as image, image.mounted() as root:
        shutil.copy2(root / "usr" / "bin" / "agent", out)
    return out


@pytest.fixture(params=["empty", "bullseye"])
def root(request: pytest.FixtureRequest, host_binary: Path) -> Iterator[Path]:
    tarball = bullseye_tarball() if request.param == "bullseye" else None
    with chroot_root(host_binary, tarball) as path:
        if request.param == "empty":
            assert sorted(p.name for p in path.iterdir()) == ["dev", "proc", "sys", "tmp", "usr"]
            assert [str(p.relative_to(path)) for p in (path / "usr").rglob("*")] == ["usr/bin", "usr/bin/agent"]
        else:
            libc = subprocess.run(["chroot", str(path), "/usr/bin/ldd", "--version"], capture_output=True,
                                  text=True, timeout=60).stdout
            assert "2.31" in libc.splitlines()[0], libc
        yield path


def in_root(root: Path, *argv: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), "/usr/bin/agent", *argv], capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})})


def test_version_and_inventory(root: Path) -> None:
    proc = in_root(root, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("agent "), proc.stderr
    proc = in_root(root, "inventory")
    assert proc.returncode == 0, proc.stderr
    inventory = json.loads(proc.stdout)
    assert inventory["cpu"]["count"] == os.cpu_count()
    assert inventory["memory"]["physical_bytes"] > 0 and inventory["interfaces"]


def test_help_offers_only_what_it_does(root: Path) -> None:
    help_text = in_root(root, "--help").stdout
    assert "inventory" in help_text and "\n  step " not in help_text
    assert "agent step --list" not in help_text and "agent step inventory" not in help_text
    proc = in_root(root, "step", "--list")
    assert proc.returncode == 2 and "runs in the agent image" in proc.stderr and "podman run" in proc.stderr


def test_registration(root: Path, tmp_path: Path) -> None:
    with start_service(tmp_path) as service:
        register(service, root)


def register(service: RefService, root: Path) -> None:
    cluster = service.create_cluster()
    infra = service.create_infra_env(cluster["id"])
    proc = subprocess.Popen(
        ["chroot", str(root), "/usr/bin/agent", "--url", service.url, "--infra-env-id", infra["id"],
         "--agent-version", "localhost/assisted-agent:latest", "--with-stdout-logging"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AGENT_STATE_DIR": "/tmp/state"})
    try:
        # the host exists only once its registration was accepted
        host = service.wait_host(infra["id"], lambda h: True, timeout=90)
        assert host["status"] in ("discovering", "insufficient", "known", "disconnected"), host
    finally:
        os.killpg(proc.pid, 15)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a hang on SIGTERM is a failure, and leaves no process behind
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate(timeout=30)
            raise AssertionError(f"the agent did not stop within 30 s of SIGTERM:\n{out[-3000:]}") from None
    assert "GLIBC" not in out, out[-3000:]
