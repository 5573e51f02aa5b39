"""installation-disk-speed-check on real loop devices: figures, throttling, safety refusals, restoration.

Throttling is real: a blkio cgroup (v1) limits write IOPS on the loop device for the step's processes, so
every fdatasync waits in the kernel's throttle queue as it would on a slow disk. Every test checks that the
device's bytes are exactly what they were before the step, partition table included.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments, UnsafeTarget
from common.host import Host
from reference_service import spec
from rules import preinstall
from rules.documents import HostView
from steps.base import StepContext
from steps.installation_disk_speed_check import (
    BLOCK_SIZE,
    REGION_OFFSET,
    WRITERS,
    DiskSpeedCheckStep,
    measure,
    percentile_ns,
    to_ms,
)
from tests.support.disks import MIB, _run, digest, loop_device

AGENT = str(Path(sys.executable).parent / "agent")
MODEL = spec.STEP_OUTPUT_MODELS["installation-disk-speed-check"]
BLKIO = Path("/sys/fs/cgroup/blkio")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices")


@contextlib.contextmanager
def throttle(dev: str, write_iops: int) -> Iterator[Path]:
    """A blkio cgroup limiting write IOPS on ``dev``; processes placed in it see a slow disk."""
    group = BLKIO / f"apre-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        majmin = Path(f"/sys/class/block/{Path(dev).name}/dev").read_text().strip()
        (group / "blkio.throttle.write_iops_device").write_text(f"{majmin} {write_iops}\n")
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        group.rmdir()


def run_step(path: str, timeout: str = "480.00", *, size: int | None = None,
             cgroup: Path | None = None) -> dict[str, Any]:
    """The step once through the real runner (``agent step --wire``), optionally inside a blkio cgroup."""
    env = {**os.environ}
    env.pop("AGENT_DISK_SPEED_BYTES", None)
    if size is not None:
        env["AGENT_DISK_SPEED_BYTES"] = str(size)
    procs_file = str(cgroup / "cgroup.procs") if cgroup else None

    def enter_cgroup() -> None:
        if procs_file:
            with open(procs_file, "w") as fh:
                fh.write(str(os.getpid()))

    args = json.dumps([json.dumps({"path": path}), timeout])
    cmd = [AGENT, "step", "--wire", "installation-disk-speed-check", args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, preexec_fn=enter_cgroup)
    assert proc.stdout, proc.stderr
    reply: dict[str, Any] = json.loads(proc.stdout)
    if reply.get("output"):
        assert spec.errors(MODEL, json.loads(reply["output"])) == []
    return reply


def output(reply: dict[str, Any]) -> dict[str, Any]:
    return json.loads(reply["output"])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_full_check_on_a_loop_device_reports_and_leaves_the_disk_as_it_was(tmp_path: Path) -> None:
    with loop_device(tmp_path) as dev:
        table = _run("sfdisk", "--dump", dev).stdout
        before = digest(dev)
        reply = run_step(dev)
        assert reply.get("exit_code", 0) == 0 and "error" not in reply, reply
        out = output(reply)
        assert out["path"] == dev
        assert 0 <= out.get("io_sync_duration", 0) < 1000
        assert digest(dev) == before
        assert _run("sfdisk", "--dump", dev).stdout == table


def test_measure_gives_a_sane_figure_from_every_write(tmp_path: Path) -> None:
    with loop_device(tmp_path, gpt=False) as dev:
        before = digest(dev)
        result = measure(dev, MIB, deadline=float("inf"))
        # two writers at once over the whole region, as the Go agent's two concurrent fio runs; the worse kept
        assert result.samples == WRITERS * (MIB // BLOCK_SIZE) and not result.timed_out
        assert len(result.writer_p99_ns) == WRITERS == 2 and result.p99_ns == max(result.writer_p99_ns)
        assert min(result.writer_p99_ns) > 0 and result.p99_ns < 1_000_000_000
        assert digest(dev) == before


@pytest.mark.slow
def test_throttled_device_gives_a_larger_figure(tmp_path: Path) -> None:
    size = 64 * 1024  # 28 writes: enough for a p99, few enough to stay quick at 20 IOPS
    with loop_device(tmp_path) as dev:
        before = digest(dev)
        fast = output(run_step(dev, size=size)).get("io_sync_duration", 0)
        with throttle(dev, write_iops=20) as group:
            slow_reply = run_step(dev, size=size, cgroup=group)
        assert slow_reply.get("exit_code", 0) == 0, slow_reply
        slow = output(slow_reply)["io_sync_duration"]
        assert slow > fast
        assert slow > preinstall.DISK_SPEED_THRESHOLD_MS  # 20 IOPS: every fdatasync waits tens of ms
        assert digest(dev) == before


def test_by_path_name_with_colons_is_measured_on_the_device_it_points_to(tmp_path: Path) -> None:
    links = Path("/dev") / f"apre-{uuid.uuid4().hex[:8]}"
    links.mkdir()
    try:
        with loop_device(tmp_path) as dev:
            colon = links / "pci-0000:00:1f.2-ata-1"
            colon.symlink_to(dev)
            before = digest(dev)
            reply = run_step(str(colon), size=MIB)
            assert reply.get("exit_code", 0) == 0, reply
            assert output(reply)["path"] == str(colon)
            assert sorted(os.listdir(links)) == [colon.name]  # fio's bug created links/pci-0000 here
            assert digest(dev) == before
    finally:
        for entry in links.iterdir():
            entry.unlink()
        links.rmdir()


def _run_while_mounted(dev: str, mounted: str, mnt: Path) -> tuple[dict[str, Any], str, str]:
    """The step's reply on ``dev`` while ``mounted`` (the device or a partition) is mounted, with the device's
    digest before and after. Read-only: a read-write ext4 mount writes on its own (lazy inode-table init, journal
    commits), which would change the digest whatever the step did."""
    _run("mount", "-o", "ro", mounted, str(mnt))
    try:
        before = digest(dev)
        reply = run_step(dev, size=MIB)
        return reply, before, digest(dev)
    finally:
        _run("umount", str(mnt))


def test_mounted_device_is_refused_and_untouched(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(tmp_path, gpt=False) as dev:
        _run("mkfs.ext4", "-q", "-F", dev)
        reply, before, after = _run_while_mounted(dev, dev, mnt)
        assert reply["exit_code"] == -1
        assert "mounted on" in reply["error"] and str(mnt) in reply["error"]
        assert output(reply) == {"path": dev}
        assert after == before


def test_disk_with_a_mounted_partition_is_refused_and_untouched(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(tmp_path) as dev:
        part = f"{dev}p1"
        # This kernel parses no partition tables itself; partx adds the partition (BLKPG), devtmpfs the node.
        _run("partx", "--add", dev)
        deadline = time.monotonic() + 10
        while not Path(part).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _run("mkfs.ext4", "-q", "-F", part)
        reply, before, after = _run_while_mounted(dev, part, mnt)
        assert reply["exit_code"] == -1
        assert f"its partition {part} is mounted" in reply["error"]
        assert after == before


def test_device_held_open_exclusively_is_refused(tmp_path: Path) -> None:
    with loop_device(tmp_path) as dev:
        holder = os.open(dev, os.O_RDONLY | os.O_EXCL)
        try:
            before = digest(dev)
            reply = run_step(dev, size=MIB)
        finally:
            os.close(holder)
        assert reply["exit_code"] == -1
        assert "exclusive access" in reply["error"]
        assert digest(dev) == before


def test_paths_that_are_not_block_devices_are_refused_and_untouched(tmp_path: Path) -> None:
    plain = tmp_path / "disk.img"
    plain.write_bytes(b"x" * (4 * MIB))
    reply = run_step(str(plain), size=MIB)
    assert reply["exit_code"] == -1 and "must be a device under /dev" in reply["error"]
    holder = Path("/dev") / f"apre-{uuid.uuid4().hex[:8]}"
    holder.mkdir()
    try:
        under_dev = holder / "disk.img"
        under_dev.write_bytes(b"x" * (4 * MIB))
        reply = run_step(str(under_dev), size=MIB)
        assert reply["exit_code"] == -1 and "is not a block device" in reply["error"]
        assert under_dev.read_bytes() == b"x" * (4 * MIB)
        missing = run_step(str(holder / "nothing"), size=MIB)
        assert missing["exit_code"] == -1 and "No such file" in missing["error"]
    finally:
        for entry in holder.iterdir():
            entry.unlink()
        holder.rmdir()
    assert plain.read_bytes() == b"x" * (4 * MIB)


def test_device_too_small_for_a_region_clear_of_the_partition_tables(tmp_path: Path) -> None:
    with loop_device(tmp_path, size=16 * MIB, gpt=False) as dev:
        before = digest(dev)
        reply = run_step(dev)
        assert reply["exit_code"] == -1 and "the speed check needs" in reply["error"]
        assert digest(dev) == before


@pytest.mark.slow
def test_timeout_stops_the_measurement_and_restores_the_region(tmp_path: Path) -> None:
    size = 128 * 1024  # 56 writes at 10 IOPS: well beyond a 2 s budget (restoring 32 pages takes ~3 s more)
    with loop_device(tmp_path) as dev:
        before = digest(dev)
        with throttle(dev, write_iops=10) as group:
            reply = run_step(dev, "2.00", size=size, cgroup=group)
        assert reply["exit_code"] == 124, reply
        assert "did not finish within 2 seconds" in reply["error"]
        assert output(reply) == {"path": dev}
        assert digest(dev) == before


@pytest.mark.slow
def test_agent_stopping_mid_measurement_still_restores_the_region(tmp_path: Path) -> None:
    """SIGTERM (what the runner sends when the agent stops) ends the writes; the region is put back."""
    size = 128 * 1024
    with loop_device(tmp_path) as dev, throttle(dev, write_iops=10) as group:
        before = digest(dev)
        original = _region(dev, size)
        code = ("import sys; from steps.installation_disk_speed_check import measure; "
                f"measure({dev!r}, {size}, float('inf'))")
        procs_file = str(group / "cgroup.procs")

        def enter_cgroup() -> None:
            with open(procs_file, "w") as fh:
                fh.write(str(os.getpid()))

        proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                                preexec_fn=enter_cgroup)
        try:
            deadline = time.monotonic() + 30
            while _region(dev, size) == original:  # wait until writes have really landed
                assert time.monotonic() < deadline and proc.poll() is None, "no write seen"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode != 0 and "interrupted by signal 15" in err
        assert digest(dev) == before


def _region(dev: str, size: int) -> bytes:
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, size)
        os.preadv(fd, [buf], REGION_OFFSET)
        return bytes(buf)
    finally:
        os.close(fd)


def test_dry_run_touches_nothing(tmp_path: Path) -> None:
    step = DiskSpeedCheckStep()
    ctx = StepContext(host=Host.at("/"), config=AgentConfig(dry_run=True))
    result = step.run(step.parse_args(['{"path": "/dev/nonexistent"}', "480.00"]), ctx)
    assert result.output == {"io_sync_duration": 1, "path": "/dev/nonexistent"}


@pytest.mark.parametrize("args", [
    [], ['{"path": "/dev/sda"}', "480", "x"], ['{"path": "/dev/sda"}', "soon"], ['{"path": "/dev/sda"}', "-1"],
    ['{"path": "/dev/sda"}', "nan"], ['{"path": "sda"}', "480.00"], ['{"path": 3}', "480.00"], ["{}", "480.00"],
    ['["/dev/sda"]', "480.00"],
])
def test_malformed_arguments_are_refused(args: list[str]) -> None:
    with pytest.raises(InvalidStepArguments):
        DiskSpeedCheckStep().parse_args(args)


def test_arguments_as_the_service_sends_them() -> None:
    step = DiskSpeedCheckStep()
    params = step.parse_args(['{"path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"}', "480.00"])
    assert params.path == "/dev/disk/by-path/pci-0000:00:1f.2-ata-1" and params.timeout == 480.0
    assert step.timeout(params) > 480.0  # the budget plus time to restore the region


def test_percentile_and_millisecond_conversion() -> None:
    samples = list(range(1, 101))
    assert percentile_ns(samples) == 99
    assert percentile_ns([5]) == 5 and percentile_ns([]) == 0
    assert to_ms(1_999_999) == 1 and to_ms(999_999) == 0


def test_unsafe_target_is_raised_before_anything_is_opened(tmp_path: Path) -> None:
    ctx = StepContext(host=Host.at("/"), config=AgentConfig())
    with pytest.raises(UnsafeTarget):
        DiskSpeedCheckStep._check(str(tmp_path), ctx)
    assert REGION_OFFSET >= MIB  # the partition table area is outside the region written


# -- reference service side -----------------------------------------------------------------------------------
def _view(host: dict[str, Any]) -> HostView:
    return HostView(host=host, infra_env={}, cluster={"id": "c"})


def test_service_asks_once_per_disk_and_records_results() -> None:
    host: dict[str, Any] = {"id": "h", "status": "preparing-for-installation",
                            "installation_disk_path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"}
    assert preinstall.sufficient_disk_speed(_view(host)) == (
        "pending", "Speed of installation disk has not yet been measured")
    args = preinstall.disk_speed_args(_view(host))
    assert args == ['{"path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"}', "480.00"]
    assert args is not None and spec.errors("disk_speed_check_request", json.loads(args[0])) == []
    preinstall.disk_speed_reply(_view(host), {"io_sync_duration": 4, "path": host["installation_disk_path"]},
                                {"exit_code": 0})
    assert json.loads(host["disks_info"]) == [{"path": host["installation_disk_path"],
                                               "disk_speed": {"tested": True, "exit_code": 0, "speed_ms": 4}}]
    assert spec.errors("disk_info", json.loads(host["disks_info"])[0]) == []
    assert preinstall.sufficient_disk_speed(_view(host)) == ("success", "Speed of installation disk is sufficient")
    assert preinstall.disk_speed_args(_view(host)) is None


def test_failed_measurement_fails_the_validation() -> None:
    host: dict[str, Any] = {"id": "h", "status": "preparing-for-installation", "installation_disk_path": "/dev/sda"}
    preinstall.disk_speed_reply(_view(host), {"path": "/dev/sda"}, {"exit_code": 124})
    outcome = preinstall.sufficient_disk_speed(_view(host))
    assert outcome is not None
    status, message = outcome
    assert status == "failure" and "installation disk speed measurement failed" in message
    # Outside preparation, a disk never measured does not block the host (as the real service).
    assert preinstall.sufficient_disk_speed(_view({"id": "h2", "status": "known",
                                                   "installation_disk_path": "/dev/sda"})) == (
        "success", "Speed of installation disk has not yet been measured")


def test_the_disk_id_link_is_what_gets_measured_as_in_the_real_service() -> None:
    host = {"id": "h", "installation_disk_path": "/dev/sda",
            "installation_disk_id": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"}
    assert preinstall.installation_disk(host) == "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"
    assert preinstall.installation_disk({"id": "h", "installation_disk_path": "/dev/sda",
                                         "installation_disk_id": "not-a-path"}) == "/dev/sda"
    assert preinstall.installation_disk({"id": "h"}) is None
