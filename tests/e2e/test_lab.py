"""The whole journey on one booted machine (issue 24, items 3, 4 and 5): ``assisted-reference-service lab`` with
one QEMU machine (TCG: this machine's nested KVM hangs) booted from the discovery ISO downloaded through the API; the
agent starts from the stock ``agent.service``, registers with the machine's virtual hardware and is discovered (its
inventory compared, field by field, with what QEMU was told: ``lab_report.fields``); the host reaches ``known``,
the installation writes the lab's OS image to its disk (write-image), reboots it (the reboot step), the machine
boots its disk and reports its first boot, and host and cluster are ``installed``. One journey, not two, so CI
boots one machine.

The ISO, the OS image and the agent image are built once and cached in ``.image-cache/``
(``container/iso/build-iso.sh``, ``container/os-image/build-os-image.sh``, ``container/build.sh`` into the tests'
own store); a clean clone builds them here, from Debian's packages. The lab runs in a network namespace of its own,
named after this process; whatever happens (failure, timeout), the lab is stopped, every process left in that
namespace is killed, and the namespace (with its bridge and tap devices) is deleted: the test checks that nothing
is left.

First, without booting anything: the lab builds the agent image, the ISO and the OS image in the network namespace
it was started in, never in the one it makes for its machines, which has no route out (a CI run's clean clone had
no cached Debian roots, its ISO build ran inside the lab's namespace, and debootstrap failed three times on
"Failed getting release file"). Each case starts the lab with empty caches (and an empty podman store where the
agent image is to be built), so that one build has to debootstrap; a stand-in ``debootstrap`` first on PATH
writes down the network namespace it runs in and fails, as the real one did in CI. The lab fails at once, the
stand-in ran in the test's own namespace, and the lab's namespace was never made. No network is used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_service import lab_report
from reference_service.lab_build import DEFAULT_IMAGE
from steps.lib import bootfs
from tests.support.image import BUILD_TIMEOUT, cached_image, cleanup_store, podman_config, store_config
from tests.support.paths import ROOT
from tests.support.service import BIN

#: Each of the machine's two stages (boot to known; install, reboot and first boot to installed), as the lab's
#: --timeout: 5 and 12 minutes on a quiet machine, far more when the two cores are shared with other work (the
#: figures are in docs/iso.md and docs/lab-install.md).
STAGE_SECONDS = 1800
#: Building the ISO and the OS image from a clean clone (debootstrap, the packages, squashfs): once per clone.
BUILD_SECONDS = 3600

pytestmark = [
    pytest.mark.timeout(BUILD_TIMEOUT + BUILD_SECONDS + 2 * STAGE_SECONDS + 600),
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces, tap devices)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("qemu-system-x86_64", "dnsmasq", "docker-registry",
                                                         "xorriso", "mksquashfs", "debootstrap")),
                       reason="needs the lab's tools (scripts/setup.sh)"),
]


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def stop_lab(proc: subprocess.Popen[bytes], namespace: str) -> None:
    """The lab asked to stop (it stops its machines and services and deletes its namespace), then made sure of."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    if namespace in namespaces():
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(1)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


STAND_IN = """#!/bin/sh
# debootstrap ... : where it ran, then the failure CI saw (the namespace's missing route)
readlink /proc/self/ns/net >>"$NETNS_RECORD"
echo "E: Failed getting release file (a stand-in for debootstrap)"
exit 1
"""
TINY_IMAGE = "localhost/lab-build-test:1"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short directory (podman refuses a long runroot) with a private podman store; removed at the end."""
    work = Path(tempfile.mkdtemp(prefix="alabb-"))
    env = podman_config(work)
    try:
        yield work
    finally:
        cleanup_store(work, env)


def run_lab(scratch: Path, *extra: str, tiny_image: bool) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = scratch / "bin"
    bin_dir.mkdir()
    (bin_dir / "debootstrap").write_text(STAND_IN)
    (bin_dir / "debootstrap").chmod(0o755)
    caches = {name: scratch / name for name in ("ISO_CACHE", "OS_IMAGE_CACHE", "AGENT_IMAGE_CACHE")}
    env = {**os.environ, **podman_config(scratch), **{k: str(v) for k, v in caches.items()},
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "NETNS_RECORD": str(scratch / "netns"),
           "DEBIAN_RETRY_SECONDS": "0"}
    if tiny_image:  # an agent image already in the store: the lab goes on to the ISO and the OS image
        subprocess.run(["podman", "import", str(tiny_tar(scratch)), TINY_IMAGE], check=True, capture_output=True,
                       timeout=120, env=env)
        extra = ("--agent-image", TINY_IMAGE, *extra)
    else:  # the lab has to build its default image into the empty store
        exists = subprocess.run(["podman", "image", "exists", DEFAULT_IMAGE], capture_output=True, timeout=120, env=env)
        assert exists.returncode == 1, exists.stderr
    namespace = f"labb-{os.getpid()}"
    argv = [str(BIN / "assisted-reference-service"), "lab", "--kvm", "off", "--work", str(scratch / "lab"),
            "--namespace", namespace, *extra]
    # Fails within seconds (no fetch, no retry pause); 600 s only bounds a hang on a loaded machine.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert namespace not in namespaces(), "the lab's namespace is made only once everything is built"
    record = scratch / "netns"
    return proc, record.read_text().split() if record.exists() else []


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("case", "script"), [("agent image", "container/build.sh"),
                                              ("ISO", "container/iso/build-iso.sh"),
                                              ("OS image", "container/os-image/build-os-image.sh")])
def test_the_lab_builds_in_the_namespace_it_was_started_in(scratch: Path, case: str, script: str) -> None:
    extra: list[str] = []
    if case == "OS image":  # the ISO given: only the OS image is left to build
        (scratch / "given.iso").write_bytes(b"\0" * 2048)
        extra = ["--iso", str(scratch / "given.iso")]
    proc, ran_in = run_lab(scratch, *extra, tiny_image=case != "agent image")
    out = proc.stdout + proc.stderr
    assert ran_in, f"debootstrap never ran: {out[-3000:]}"
    assert set(ran_in) == {os.readlink("/proc/self/ns/net")}, f"debootstrap ran in another network namespace: {out}"
    assert proc.returncode != 0 and f"{script} failed" in out, out[-3000:]
    assert "Failed getting release file" in out, out[-3000:]
    assert not (scratch / "lab" / "lab-report.json").exists(), "the lab's run never started"


def tiny_tar(directory: Path) -> Path:
    (directory / "hello").write_text("hello\n")
    with tarfile.open(directory / "tiny.tar", "w") as tar:
        tar.add(directory / "hello", arcname="hello")
    return directory / "tiny.tar"


def test_a_store_copied_from_the_cache_is_the_clones_own(scratch: Path) -> None:
    """The lab's test finds its agent image in a store copied from the session's cache with ``cp -al``: that
    copy's podman and buildah use the copy (podman had taken the store named in the copied database, the cache's
    first clone's, and found no image buildah had just built), and the cache's files stay as they were."""
    cache, clone = scratch / "cache", scratch / "clone"
    cache_env = {**os.environ, **store_config(cache)}
    subprocess.run(["podman", "import", str(tiny_tar(scratch)), TINY_IMAGE], check=True, capture_output=True,
                   timeout=120, env=cache_env)
    conf = (cache / "storage.conf").read_text()
    try:
        subprocess.run(["cp", "-al", str(cache), str(clone)], check=True, timeout=120)
        clone_env = {**os.environ, **store_config(clone)}
        assert (cache / "storage.conf").read_text() == conf, "the cache's storage.conf was rewritten"
        subprocess.run(["podman", "tag", TINY_IMAGE, "localhost/lab-build-test:clone"], check=True,
                       capture_output=True, timeout=120, env=clone_env)
        seen = subprocess.run(["buildah", "inspect", "--type", "image", "localhost/lab-build-test:clone"],
                              capture_output=True, text=True, timeout=120, env=clone_env)
        assert seen.returncode == 0, f"podman and buildah use different stores: {seen.stderr}"
        in_cache = subprocess.run(["podman", "image", "exists", "localhost/lab-build-test:clone"],
                                  capture_output=True, timeout=120, env=cache_env)
        assert in_cache.returncode == 1, "the clone's podman changed the cache's store"
    finally:
        for store in (clone, cache):
            if store.exists():
                env = store_config(store)
                cleanup_store(store, env, keep_images=True)
                run = re.search(r'runroot = "(.*)"', Path(env["CONTAINERS_STORAGE_CONF"]).read_text())
                shutil.rmtree(run.group(1) if run else "/nonexistent", ignore_errors=True)


def test_a_machine_boots_the_iso_is_discovered_with_its_hardware_and_installed(tmp_path: Path) -> None:
    work = tmp_path / "lab"
    namespace = f"labe2e-{os.getpid()}"
    with cached_image() as image:
        argv = [str(BIN / "assisted-reference-service"), "lab", "--hosts", "1", "--cpus", "1", "--memory", "3072",
                "--kvm", "off", "--until", "installed", "--timeout", str(STAGE_SECONDS), "--work", str(work),
                "--namespace", namespace]
        log = open(tmp_path / "lab.out", "wb")  # noqa: SIM115 (the lab writes to it until stopped)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **image.env})
        try:
            code = proc.wait(BUILD_SECONDS + 2 * STAGE_SECONDS + 300)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_lab(proc, namespace)
            log.close()
    out = (tmp_path / "lab.out").read_text(errors="replace")
    assert namespace not in namespaces(), "the lab's namespace (bridge, taps) is gone"
    if (work / "lab-report.json").exists():  # not when a build failed: the lab's run never started
        print("\n".join(lab_report.lines(json.loads((work / "lab-report.json").read_text()))))
    assert code == 0, out[-3000:]
    report = json.loads((work / "lab-report.json").read_text())
    phases = report["phases"]
    assert {"build", "network", "service", "iso", "boot", "registered", "known", "preparing", "write",
            "installed"} <= set(phases), phases
    assert report["accel"] == "tcg" and report["iso_bytes"] > 100 << 20
    spec = report["machines"][0]
    host = lab_report.host_of(report, spec)
    # every field, the hostname too: the live system takes lab-0 from its DHCP lease (hostname-from-dhcp)
    differ = [(name, told, got) for name, told, got in lab_report.fields(spec, host) if str(told) != str(got)]
    assert differ == [], differ
    console = report["consoles"][spec["name"]]
    assert {"kernel runs /init", "systemd starts", "Ignition applied", "agent started"} <= set(console)
    # The reboot: systemd stopped the stock agent.service well before the unit's 90 s stop timeout (the agent once
    # hung after SIGTERM until systemd killed it there; the host agent now gives the runner container 45 s at most,
    # and took 10 s at load 7, 43 s at load 15).
    assert {"agent.service stopping", "agent.service stopped"} <= set(console), console
    assert console["agent.service stopped"] - console["agent.service stopping"] < 90, console

    # installed: the report came from the installed disk's first boot, and the disk is the one the inventory named
    assert host["status"] == "installed" and host["progress"]["current_stage"] == "Done", host.get("status_info")
    assert report["cluster_status"] == "installed"
    assert report["booted_installed_disk"] == [True]
    (disk,) = [d for d in json.loads(host["inventory"])["disks"] if d.get("drive_type") != "ODD"]
    assert host["installation_disk_path"] == disk["path"], "the installation wrote the disk the inventory named"
    check_written_disk(work / f"{spec['name']}.disk")


def check_written_disk(disk: Path) -> None:
    """The machine's disk holds the lab's OS image as write-image left it: its GPT, checked as the step checks
    it (CRCs, the backup header where the primary says), with the image's partitions."""
    with open(disk, "rb") as fh:
        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        table = bootfs.parse_gpt(read_at, 512)
    assert [p.name for p in table.partitions] == ["boot", "root"]
