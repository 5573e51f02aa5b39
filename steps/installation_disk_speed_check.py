"""installation-disk-speed-check: the 99th percentile of fdatasync latency on the installation disk, in ms.

etcd needs fast fdatasync; the service asks for this figure before installing. The Go agent runs fio
(``--rw=write --ioengine=sync --bs=2300 --size=22m --fdatasync=1``) in a container and reports
``jobs[0].sync.lat_ns.percentile["99.000000"]`` of each of two fio runs it starts at once on the same disk,
keeping the worse (larger) figure. We measure in-process with the same method -- two writers at once, each
writing 2300-byte buffers sequentially through the device's page cache with an fdatasync after each, 22 MiB,
only the fdatasync calls timed, the worse writer's 99th percentile kept -- so no fio, no container and no
filename parsing is involved (fio splits
``--filename`` on ':' and once wrote by-path names to a file on the root filesystem). bench/disk_speed.py
runs both on the same device and prints the two figures side by side.

Safety, checked before the first byte is written: the path must resolve to a whole-disk block device under
/dev that is not mounted (nor any of its partitions), not swap, not held by LVM/RAID/device-mapper, not the
installation media (``steps.lib.disk_safety``), and the kernel must grant us an exclusive open (O_EXCL), which
also keeps anyone from mounting it while we write. Unlike the Go agent, which writes over the start of the
disk, we write the region [1 MiB, 1 MiB + 22 MiB): the partition table (first MiB) and the backup GPT
(last MiB) are never touched, even if the step is killed. The region's previous contents are read first and
written back (and fdatasync'ed and compared) afterwards, on success, on failure and on timeout alike.

Arguments: ``[{"path": "/dev/sda"}, "480.00"]``; the second is the time budget in seconds. Past it the
measurement stops, the region is restored and the reply is exit 124 (as coreutils ``timeout`` around the Go
agent's container), output ``{"path": ...}`` so the service records the failure against the disk.

``AGENT_DISK_SPEED_BYTES`` overrides the 22 MiB written; it exists for tests and benchmarks on throttled
devices, where 22 MiB would take minutes, and must not be set on real hosts.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from common import progress
from common.errors import InvalidStepArguments, StepError, UnsafeTarget
from steps.base import Step, StepContext, StepResult, get_field, json_arg
from steps.lib import disk_safety

STEP = "installation-disk-speed-check"
BLOCK_SIZE = 2300
DEFAULT_SIZE = 22 * 1024 * 1024
#: Where the measured region starts; the first MiB (MBR/GPT) is never written.
REGION_OFFSET = 1024 * 1024
#: Kept clear at the end of the disk for the backup GPT.
TAIL_RESERVE = 1024 * 1024
DEFAULT_TIMEOUT = 480.0
#: Time the step keeps after its budget to put the region back before the runner may kill it.
RESTORE_MARGIN = 60.0
TIMED_OUT_EXIT = 124
#: Writers at once, each over the whole region: the Go agent's numOfFioJobs (two fio runs, the worse one kept).
WRITERS = 2


@dataclass(frozen=True)
class DiskSpeedParams:
    path: str
    timeout: float


@dataclass(frozen=True)
class Measurement:
    p99_ns: int  # the worse writer's
    samples: int  # fdatasync calls timed, all writers together
    timed_out: bool
    writer_p99_ns: tuple[int, ...] = ()


def region_size(setting: int) -> int:
    """The ``disk_speed_bytes`` setting (AGENT_DISK_SPEED_BYTES), or the default when it is under one block."""
    return setting if setting >= BLOCK_SIZE else DEFAULT_SIZE


def percentile_ns(latencies: list[int], pct: float = 99.0) -> int:
    """Nearest-rank percentile: the smallest sample that at least ``pct`` % of samples do not exceed."""
    if not latencies:
        return 0
    ordered = sorted(latencies)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def to_ms(ns: int) -> int:
    """Milliseconds, truncated like the Go agent's int64(ns / 1e6)."""
    return int(ns // 1_000_000)


class DiskSpeedCheckStep(Step[DiskSpeedParams]):
    step_type = STEP
    default_timeout = DEFAULT_TIMEOUT + RESTORE_MARGIN

    def parse_args(self, args: list[str]) -> DiskSpeedParams:
        if len(args) not in (1, 2):
            raise InvalidStepArguments(
                f"{STEP} expects 2 arguments ([{{\"path\": ...}}, timeout]), got {len(args)}"
            )
        request = json_arg(STEP, args[0], dict)
        path = get_field(STEP, request, "path", str)
        if not path.startswith("/") or "\x00" in path:
            raise InvalidStepArguments(f"{STEP}: path must be an absolute device path, got {path!r}")
        timeout = DEFAULT_TIMEOUT
        if len(args) == 2:
            bad = InvalidStepArguments(f"{STEP}: the timeout must be a positive number, not {args[1]!r}")
            try:
                timeout = float(args[1])
            except ValueError:
                raise bad from None
            if not math.isfinite(timeout) or timeout <= 0:
                raise bad
        return DiskSpeedParams(path, timeout)

    def timeout(self, params: DiskSpeedParams) -> float:
        return params.timeout + RESTORE_MARGIN

    def run(self, params: DiskSpeedParams, ctx: StepContext) -> StepResult:
        if ctx.config.dry_run:
            return StepResult(output={"io_sync_duration": 1, "path": params.path})
        deadline = time.monotonic() + min(params.timeout, max(0.0, ctx.remaining() - RESTORE_MARGIN))
        try:
            result = measure(ctx.host.path(self._check(params.path, ctx)), region_size(ctx.config.disk_speed_bytes),
                             deadline, show=ctx.config.progress)
        except StepError as exc:  # UnsafeTarget included: the service records the failure against the path
            return StepResult(output={"path": params.path}, exit_code=exc.exit_code, error=exc.describe())
        if result.timed_out:
            return StepResult(
                output={"path": params.path},
                exit_code=TIMED_OUT_EXIT,
                error=f"disk speed check on {params.path} did not finish within {params.timeout:g} seconds "
                f"({result.samples} writes done); the region written was restored",
            )
        ms = to_ms(result.p99_ns)
        # Go's field order; a duration of 0 is left out as Go's omitempty does.
        output = {"io_sync_duration": ms, "path": params.path} if ms else {"path": params.path}
        return StepResult(output=output)

    @staticmethod
    def _check(path: str, ctx: StepContext) -> str:
        dev = disk_safety.check_target(ctx.host, path)
        size = region_size(ctx.config.disk_speed_bytes)
        needed = REGION_OFFSET + size + TAIL_RESERVE
        if dev.size_bytes < needed:
            raise UnsafeTarget(
                f"refusing to write to {path}: the disk has {dev.size_bytes} bytes, the speed check needs "
                f"{needed} (a {size}-byte region clear of the partition tables)"
            )
        return dev.path


def measure(device: os.PathLike[str] | str, size: int, deadline: float, *, show: bool = False) -> Measurement:
    """Time fdatasync after each sequential 2300-byte write of [REGION_OFFSET, +size); always restore it.

    SIGTERM/SIGINT (the agent stopping) end the writes early instead of the process, so the region is put
    back before the step exits; the runner's SIGKILL comes only after a grace period.
    """
    with _signals_stop_writing() as stopped:
        result = _measure(device, size, deadline, stopped, show)
    if stopped:
        raise StepError(
            f"disk speed check on {device} interrupted by signal {stopped[0]}; the region written was restored"
        )
    return result


@contextlib.contextmanager
def _signals_stop_writing() -> Iterator[list[int]]:
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def note(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _measure(device: os.PathLike[str] | str, size: int, deadline: float, stopped: list[int],
             show: bool = False) -> Measurement:
    count = size // BLOCK_SIZE
    length = count * BLOCK_SIZE
    try:
        fd = os.open(device, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafeTarget(
            f"refusing to write to {device}: the kernel denies exclusive access ({exc.strerror}); "
            "it is in use (mounted, swap, or held by another device)"
        ) from exc
    try:
        saved = _read_exact(fd, length, REGION_OFFSET)
        payload = os.urandom(BLOCK_SIZE)
        per_writer: list[list[int]] = [[] for _ in range(WRITERS)]
        timed_out: list[bool] = []
        failures: list[OSError] = []
        shown = progress.meter(f"fdatasync latency of {device}", count * WRITERS, unit="writes",
                               show=show)

        def write(latencies: list[int], first: bool) -> None:
            try:
                for i in range(count):
                    if stopped or failures:
                        return
                    if time.monotonic() >= deadline:
                        timed_out.append(True)
                        return
                    os.pwrite(fd, payload, REGION_OFFSET + i * BLOCK_SIZE)
                    start = time.perf_counter_ns()
                    os.fdatasync(fd)
                    latencies.append(time.perf_counter_ns() - start)
                    if first:
                        shown.update(sum(map(len, per_writer)))
            except OSError as exc:
                failures.append(exc)

        writers = [threading.Thread(target=write, args=(lat, n == 0), name=f"fdatasync-{n}", daemon=True)
                   for n, lat in enumerate(per_writer)]
        try:
            for thread in writers:
                thread.start()
            for thread in writers:
                while thread.is_alive():  # in slices, so a signal's handler runs while we wait
                    thread.join(0.2)
        finally:
            done = sum(map(len, per_writer))
            shown.finish(failed=done < count * WRITERS)
            for thread in writers:  # a writer still in a syscall (the join above was interrupted) ends first
                thread.join()
            _restore(fd, saved, device)
        if failures:
            raise StepError(f"writing to {device} failed after {done} writes: {failures[0].strerror}") \
                from failures[0]
    finally:
        os.close(fd)
    figures = tuple(percentile_ns(lat) for lat in per_writer)
    return Measurement(max(figures), done, bool(timed_out), figures)


def _read_exact(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    done = 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 4 * 1024 * 1024), offset + done)
        if not chunk:
            raise StepError(f"short read at offset {offset + done}: the device is smaller than it claims")
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _restore(fd: int, saved: bytes, device: os.PathLike[str] | str) -> None:
    view = memoryview(saved)
    done = 0
    try:
        while done < len(saved):
            done += os.pwrite(fd, view[done:], REGION_OFFSET + done)
        os.fdatasync(fd)
        if _read_exact(fd, len(saved), REGION_OFFSET) != saved:
            raise OSError(0, "read-back differs")
    except OSError as exc:
        raise StepError(
            f"DATA AT RISK: restoring bytes {REGION_OFFSET}..{REGION_OFFSET + len(saved)} of {device} failed "
            f"({exc.strerror}); the partition table was not touched",
            code="disk-restore-failed",
        ) from exc
