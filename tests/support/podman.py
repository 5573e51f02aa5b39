"""A private podman store and a local registry for tests that pull, push and run images (needs root)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from common.podman import podman_argv
from reference_service import spec

AGENT = str(Path(sys.executable).parent / "agent")

needs_podman = pytest.mark.skipif(
    not (shutil.which("podman") and shutil.which("docker-registry")) or os.geteuid() != 0,
    reason="needs root, podman and docker-registry (scripts/setup.sh installs them)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PodmanLab:
    env: dict[str, str]
    registry: str
    workdir: Path

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env}
        proc = subprocess.run(podman_argv_with(self.env, *args), capture_output=True, text=True, timeout=120,
                              env=env)
        assert not check or proc.returncode == 0, f"podman {args}: {proc.stderr}"
        return proc

    def build(self, name: str) -> str:
        """A small image built locally as localhost/<name>:1 (a root filesystem with one file)."""
        rootfs = self.workdir / f"{name}.tar"
        content = self.workdir / f"{name}-hello.txt"
        content.write_text(f"built for {name}\n" + "x" * 200_000)
        with tarfile.open(rootfs, "w") as tar:
            tar.add(content, arcname="hello.txt")
        ref = f"localhost/{name}:1"
        self.podman("import", str(rootfs), ref)
        return ref

    def publish(self, name: str) -> str:
        """Build ``name``, push it to the registry, and drop every local copy: pulling it is real work."""
        local = self.build(name)
        remote = f"{self.registry}/{name}:1"
        self.podman("push", local, remote)
        self.podman("rmi", "--force", local)
        assert not self.present(remote)
        return remote

    def present(self, ref: str) -> bool:
        return bool(self.podman("images", "--quiet", ref).stdout.strip())

    def run_step(self, images: list[str], timeout: int | None = None,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"images": images}
        if timeout is not None:
            request["timeout"] = timeout
        return run_cli("container-image-availability", request, {**self.env, **(env or {})})


def podman_argv_with(env: dict[str, str], *args: str) -> list[str]:
    return podman_argv(*args, options=env["AGENT_PODMAN_ARGS"])


def run_cli(step_type: str, request: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One step through the real runner (``agent step --wire``); the wire reply."""
    cmd = [AGENT, "step", "--wire", step_type, json.dumps([json.dumps(request)])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, **env})
    assert proc.stdout, proc.stderr
    reply: dict[str, Any] = json.loads(proc.stdout)
    if step_type == "container-image-availability":
        assert "error" not in reply, reply  # the Go agent leaves it empty; reasons go to the log
    reply["_log"] = proc.stderr  # not part of the reply: where the step said why an image failed
    if reply.get("output"):
        assert spec.errors(spec.STEP_OUTPUT_MODELS[step_type], json.loads(reply["output"])) == []
    return reply


@contextlib.contextmanager
def podman_lab(tmp_path: Path) -> Iterator[PodmanLab]:
    """A private podman store and a docker-registry on 127.0.0.1, both removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="apre-podman-"))  # short: podman refuses a runroot over 50 characters
    (work / "storage").mkdir()
    (work / "run").mkdir()
    port = _free_port()
    (work / "registry.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'registry'}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    (work / "registries.conf").write_text(
        f'unqualified-search-registries = []\n[[registry]]\nlocation = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    env = {
        "AGENT_PODMAN_ARGS": f"--root {work / 'storage'} --runroot {work / 'run'} --storage-driver vfs "
                             "--runtime runc --cgroup-manager cgroupfs --events-backend file",
        "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
    }
    log = open(work / "registry.log", "wb")  # noqa: SIM115 - closed right after the process starts
    registry = subprocess.Popen(["docker-registry", "serve", str(work / "registry.yml")], stdout=log, stderr=log)
    log.close()
    lab = PodmanLab(env, f"127.0.0.1:{port}", work)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (work / "registry.log").read_text()
            time.sleep(0.1)
        yield lab
    finally:
        registry.terminate()
        try:
            registry.wait(timeout=10)
        except subprocess.TimeoutExpired:
            registry.kill()
            registry.wait(timeout=10)
        lab.podman("rmi", "--all", "--force", check=False)
        shutil.rmtree(work, ignore_errors=True)
