"""The agent image, built for real by ``container/build.sh`` into a private container store, and podman set up
the way this machine needs it.

Why a private store: tests never touch the machine's images. Why the configuration files: this VM's podman
runs containers only with runc, cgroupfs, file events and explicit ulimits (machine-feasibility.md section 6).
They are given as ``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF``, the variables podman reads and the Go agent
passes into its containers, so the agent under test needs no option of its own: on a discovery ISO the same
settings are simply podman's defaults. The Debian base is cached by build.sh in ``.image-cache/`` (made with
debootstrap once per clone, so once per CI run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
IMAGE = "localhost/assisted-agent:latest"
BUILD_TIMEOUT = 1800


@dataclass
class BuiltImage:
    ref: str
    #: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF for podman and buildah (and the agents under test).
    env: dict[str, str]
    work: Path
    build_output: str
    build_seconds: float

    def podman(self, *args: str, timeout: float = 300, check: bool = True,
               netns: str | None = None) -> subprocess.CompletedProcess[str]:
        prefix = ["ip", "netns", "exec", netns] if netns else []
        proc = subprocess.run([*prefix, "podman", *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})
        assert not check or proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr[-2000:]}"
        return proc

    def buildah(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})
        assert proc.returncode == 0, f"buildah {' '.join(args)}: {proc.stderr[-2000:]}"
        return proc

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Path]:
        """The image's root filesystem, read through a buildah working container."""
        ctr = self.buildah("from", "--pull-never", self.ref).stdout.strip().splitlines()[-1]
        try:
            yield Path(self.buildah("mount", ctr).stdout.strip())
        finally:
            subprocess.run(["buildah", "rm", ctr], capture_output=True, timeout=120, env={**os.environ, **self.env})


def podman_config(work: Path) -> dict[str, str]:
    (work / "storage").mkdir(exist_ok=True)
    (work / "run").mkdir(exist_ok=True)
    (work / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{work / "storage"}"\nrunroot = "{work / "run"}"\n')
    (work / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'tmp_dir = "{work / "run" / "libpod"}"\n')
    return {"CONTAINERS_CONF": str(work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf")}


@contextlib.contextmanager
def built_image() -> Iterator[BuiltImage]:
    work = Path(tempfile.mkdtemp(prefix="aimg-"))  # short: podman refuses a long runroot
    env = podman_config(work)
    try:
        started = time.monotonic()
        proc = subprocess.run(["bash", str(ROOT / "container" / "build.sh")], capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT, env={**os.environ, **env}, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-4000:]
        yield BuiltImage(IMAGE, env, work, proc.stdout + proc.stderr, time.monotonic() - started)
    finally:
        cleanup_store(work, env)


def cleanup_store(work: Path, env: dict[str, str]) -> None:
    full = {**os.environ, **env}
    for argv in (["podman", "rm", "--all", "--force"], ["buildah", "rm", "--all"],
                 ["podman", "rmi", "--all", "--force"]):
        subprocess.run(argv, capture_output=True, timeout=300, env=full)
    with open("/proc/mounts") as fh:
        mounts = [line.split()[1] for line in fh if line.split()[1].startswith(str(work))]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, timeout=60)
    shutil.rmtree(work, ignore_errors=True)
