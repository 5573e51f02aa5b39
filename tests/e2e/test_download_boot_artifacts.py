"""download-boot-artifacts against a real HTTP server on loopback, into a host root made of files: the kernel,
the initrd and the boot entry land whole, a second run downloads nothing, a failed download leaves nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments, StepError
from common.host import Host
from steps.base import StepContext
from steps.download_boot_artifacts import ENTRY, DownloadBootArtifactsStep, boot_entry
from tests.support.install_images import RecordingServer

ROOTFS = "https://images.example.com/boot-artifacts/rootfs?arch=x86_64&version=4.16"


def run(server: RecordingServer, root: Path, kernel: str = "/vmlinuz") -> str:
    step = DownloadBootArtifactsStep()
    params = step.parse_args([json.dumps({"host_fs_mount_dir": "/host", "kernel_url": server.url + kernel,
                                          "initrd_url": server.url + "/initrd", "rootfs_url": ROOTFS})])
    ctx = StepContext(host=Host.at(root), config=AgentConfig(url=server.url))
    result = step.run(params, ctx)
    assert result.exit_code == 0
    return str(result.output)


@pytest.fixture
def artifacts(tmp_path: Path, server: RecordingServer) -> Path:
    for name, size in (("vmlinuz", 3 << 20), ("initrd", 5 << 20)):
        (tmp_path / name).write_bytes(os.urandom(size))
        server.serve(f"/{name}", tmp_path / name)
    root = tmp_path / "root"
    (root / "host" / "boot" / "loader" / "entries").mkdir(parents=True)
    return root


def test_kernel_initrd_and_entry_are_placed_once(tmp_path: Path, server: RecordingServer, artifacts: Path) -> None:
    assert run(server, artifacts) == "Successfully downloaded boot artifacts"
    boot = artifacts / "host" / "boot"
    assert (boot / "discovery" / "vmlinuz").read_bytes() == (tmp_path / "vmlinuz").read_bytes()
    assert (boot / "discovery" / "initrd").read_bytes() == (tmp_path / "initrd").read_bytes()
    assert (artifacts / "host" / ENTRY).read_text() == (
        "title Assisted Installer Discovery\nversion 999\n"
        f"options random.trust_cpu=on ignition.firstboot ignition.platform.id=metal 'coreos.live.rootfs_url={ROOTFS}'\n"
        "linux /boot/discovery/vmlinuz\ninitrd /boot/discovery/initrd\n")
    gets = len(server.requests)
    assert gets == 2
    assert run(server, artifacts) == "Successfully downloaded boot artifacts"
    assert len(server.requests) == gets  # already there: nothing downloaded again
    assert sorted(os.listdir(boot / "discovery")) == ["initrd", "vmlinuz"]


def test_a_failed_download_leaves_nothing_behind(server: RecordingServer, artifacts: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("steps.download_boot_artifacts.time.sleep", lambda s: None)
    with pytest.raises(StepError, match=r"failed to download .*/missing after 3 attempts: 404"):
        run(server, artifacts, kernel="/missing")
    assert os.listdir(artifacts / "host" / "boot" / "discovery") == []
    assert not (artifacts / "host" / ENTRY).exists()


def test_s390x_entry_and_bad_requests() -> None:
    assert "coreos.live.rootfs_url=http://x/r ai.ip_cfg_override=1\n" in boot_entry("http://x/r", "s390x")
    step = DownloadBootArtifactsStep()
    good = {"host_fs_mount_dir": "/host", "kernel_url": "http://x/k", "initrd_url": "http://x/i",
            "rootfs_url": "http://x/r"}
    for bad, message in (({"host_fs_mount_dir": "host"}, "absolute path"),
                         ({"kernel_url": "file:///etc/shadow"}, "kernel_url must be an http"),
                         ({"rootfs_url": "http://x/r' init=/bin/sh"}, "rootfs_url must be an http")):
        with pytest.raises(InvalidStepArguments, match=message):
            step.parse_args([json.dumps({**good, **bad})])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount)")
def test_a_read_only_boot_mount_is_remounted_read_write(server: RecordingServer, artifacts: Path) -> None:
    """CoreOS mounts /boot read-only; here a read-only tmpfs plays that /boot."""
    import subprocess

    boot = artifacts / "host" / "boot"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64m", "ainst-boot", str(boot)], check=True)
    try:
        assert os.statvfs(boot).f_flag & os.ST_RDONLY
        assert run(server, artifacts) == "Successfully downloaded boot artifacts"
        assert not os.statvfs(boot).f_flag & os.ST_RDONLY
        assert sorted(os.listdir(boot / "discovery")) == ["initrd", "vmlinuz"]
    finally:
        subprocess.run(["umount", str(boot)], check=False)
