"""The agent image, built for real by ``container/build.sh`` into a private container store, and podman set up
the way this machine needs it.

Why a private store: tests never touch the machine's images. Why the configuration files: this VM's podman
runs containers only with runc, cgroupfs, file events and explicit ulimits (machine-feasibility.md section 6),
and containers that name no network get none (podman's default bridge would set up CNI and iptables on this
shared machine; the agent's runner says ``--net=host`` and the stock ``cp`` needs no network).
They are given as ``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF``, the variables podman reads and the Go agent
passes into its containers, so the agent under test needs no option of its own: on a discovery ISO the same
settings are simply podman's defaults. The Debian base is cached by build.sh in ``.image-cache/`` (made with
debootstrap once per clone, so once per CI run).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
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


def podman_config(work: Path, *, graphroot: Path | None = None, runroot: Path | None = None) -> dict[str, str]:
    graphroot, runroot = graphroot or work / "storage", runroot or work / "run"
    graphroot.mkdir(exist_ok=True)
    runroot.mkdir(exist_ok=True)
    write_new(work / "storage.conf",
              f'[storage]\ndriver = "overlay"\ngraphroot = "{graphroot}"\nrunroot = "{runroot}"\n')
    write_new(work / "containers.conf",
              '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\nnetns = "none"\n'
              '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
              f'tmp_dir = "{runroot / "libpod"}"\n')
    return {"CONTAINERS_CONF": str(work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf")}


#: What the image is made from: a change to any of these files makes the fixture build again.
INPUTS = ("agent", "common", "inventory", "steps", "container", "pyproject.toml", ".containerignore")
#: Not in the image: the discovery ISO's recipe (container/iso/build-iso.sh), which has its own cache.
NOT_INPUTS = ("container/iso",)
#: The tests' own store, kept between sessions so an unchanged tree reuses its image (gitignored).
STORE = ROOT / ".image-cache" / "test-store"


def inputs_digest(root: Path = ROOT) -> str:
    """sha256 over the image's inputs (paths and contents) and the build Python: the image's identity."""
    digest = hashlib.sha256(sys.version.encode())
    files: list[Path] = []
    for name in INPUTS:
        top = root / name
        files += [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
    for path in sorted(files):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or str(rel).startswith(NOT_INPUTS):
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_new(path: Path, text: str) -> None:
    """``text`` as a new file: ``path`` may be a hard link into the session's shared cache (``cp -al``), which
    writing in place would change for every clone."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def unshare_store(store: Path) -> None:
    """A store copied with ``cp -al`` shares its files with the cache and the other clones. podman and buildah
    write their lock files in place, so each gets a copy of its own; and libpod's database goes: podman 4 takes
    the graph root recorded there over storage.conf's, so a copied one sends this clone's podman to the store of
    the clone that made it (buildah, reading storage.conf, builds here: podman then cannot find the image). The
    database holds no image, only containers, and podman makes a new one."""
    graph = store / "storage"
    for path in [*graph.glob("*"), *(p for d in ("libpod", "overlay-images", "overlay-layers", "overlay-containers")
                                    for p in (graph / d).glob("*"))]:
        if not path.is_file() or path.is_symlink() or path.stat().st_nlink == 1:
            continue
        if path.parent.name == "libpod":
            path.unlink()
            continue
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        shutil.copy2(path, tmp)
        os.replace(tmp, path)


def store_config(store: Path = STORE) -> dict[str, str]:
    """podman/buildah configuration of a persistent store; its runroot is short and in /tmp (podman wants both
    fixed for a store's lifetime, and a short runroot)."""
    store.mkdir(parents=True, exist_ok=True)
    unshare_store(store)
    run = Path(tempfile.gettempdir()) / f"aimg-{hashlib.sha256(str(store).encode()).hexdigest()[:10]}"
    run.mkdir(exist_ok=True)
    env = podman_config(store, graphroot=store / "storage", runroot=run)
    forget_moved_store(store / "storage", env)
    return env


def forget_moved_store(graphroot: Path, env: dict[str, str]) -> None:
    """podman's database (libpod/bolt_state.db) records the graphroot it was made in and, when the store has been
    copied or moved (a clone's ``.image-cache`` copied from another's), silently keeps using the old path: the
    tests then saw another clone's images, and none at all once that clone was deleted. Such a database goes;
    podman makes a new one (the images are in the layers, not in it)."""
    seen = subprocess.run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env}).stdout.strip()
    if seen and Path(seen) != graphroot:
        (graphroot / "libpod" / "bolt_state.db").unlink(missing_ok=True)


@contextlib.contextmanager
def cached_image(store: Path = STORE) -> Iterator[BuiltImage]:
    """The image, built by ``container/build.sh`` into the tests' store unless that store already holds an
    image built from the same inputs (``inputs_digest``). Containers and mounts are removed at the end; the
    image stays for the next session."""
    env = store_config(store)
    stamp = store / "inputs.sha256"
    digest = inputs_digest()
    full = {**os.environ, **env}
    have = subprocess.run(["buildah", "inspect", "--type", "image", IMAGE], capture_output=True, timeout=120,
                          env=full).returncode == 0
    output, seconds = "reused: inputs unchanged", 0.0
    try:
        if not (have and stamp.exists() and stamp.read_text().strip() == digest):
            stamp.unlink(missing_ok=True)
            started = time.monotonic()
            proc = subprocess.run(["bash", str(ROOT / "container" / "build.sh")], capture_output=True,
                                  text=True, timeout=BUILD_TIMEOUT, env=full, cwd=ROOT)
            assert proc.returncode == 0, proc.stderr[-4000:]
            assert proc.stdout.strip().splitlines()[-1] == IMAGE, proc.stdout[-2000:]
            output, seconds = proc.stdout + proc.stderr, time.monotonic() - started
            stamp.write_text(digest + "\n")
        yield BuiltImage(IMAGE, env, store, output, seconds)
    finally:
        cleanup_store(store, env, keep_images=True)


@contextlib.contextmanager
def built_image() -> Iterator[BuiltImage]:
    """A fresh build into a throwaway store (what a clean machine does), removed at the end."""
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


def cleanup_store(work: Path, env: dict[str, str], *, keep_images: bool = False) -> None:
    """Every container and mount of the store goes (and its images and files, unless ``keep_images``)."""
    full = {**os.environ, **env}
    argvs = [["podman", "rm", "--all", "--force"], ["buildah", "rm", "--all"]]
    if not keep_images:
        argvs.append(["podman", "rmi", "--all", "--force"])
    for argv in argvs:
        subprocess.run(argv, capture_output=True, timeout=300, env=full)
    with open("/proc/mounts") as fh:
        mounts = [line.split()[1] for line in fh if line.split()[1].startswith(str(work))]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, timeout=60)
    if not keep_images:
        shutil.rmtree(work, ignore_errors=True)


#: Enters the host namespace as a booted host is: its own network, and a /sys that shows that network's NICs
#: with the cgroup hierarchy still mounted under it. (``ip netns exec`` mounts a fresh sysfs over /sys, which
#: hides /sys/fs/cgroup: runc then fails with "no cgroup mount found in mountinfo", the runner never starts,
#: and the host stays in discovering, "Waiting for host to send hardware details".)
AS_HOST = ('mount --rbind /sys/fs/cgroup "$0" && mount -t sysfs sysfs /sys && mount --move "$0" /sys/fs/cgroup '
           '&& exec "$@"')


def in_netns(name: str, argv: list[str], scratch: Path) -> list[str]:
    """argv in the host namespace ``name`` (tools by full path: the PATH given is the unit's, not the test's)."""
    tools = [shutil.which(t) for t in ("nsenter", "unshare", "sh")]
    assert all(tools)
    nsenter, unshare, sh = (str(t) for t in tools)
    scratch.mkdir(exist_ok=True)
    return [nsenter, f"--net=/run/netns/{name}", unshare, "--mount", "--propagation", "private", sh, "-c",
            AS_HOST.replace("mount ", "/bin/mount "), str(scratch), *argv]
