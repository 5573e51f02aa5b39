"""The ``write-image`` step: the order of operations (see the package's docstring), its progress and its reply."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from common import progress as terminal
from common.errors import AgentError
from common.logs import redact_url
from steps.base import Step, StepContext, StepResult
from steps.lib import bootfs, disk_safety
from steps.lib.progress import FAILED, INSTALLING, STARTING, ProgressReporter
from steps.write_image.checks import check_written
from steps.write_image.decompress import detect, raw_stream
from steps.write_image.errors import Interrupted
from steps.write_image.hashing import HashingReader
from steps.write_image.params import DEFAULT_TIMEOUT, WriteImageParams, parse_params
from steps.write_image.pipeline import stream_image
from steps.write_image.placement import ignition_for, needs_placement, place
from steps.write_image.sources import open_source
from steps.write_image.writer import DeviceWriter, format_disks


@dataclass
class WriteStats:
    bytes_written: int = 0
    raw_sha256: str = ""
    image_sha256: str = ""
    compression: str = "none"
    seconds: float = 0.0


@contextlib.contextmanager
def _sigterm_aborts() -> Iterator[None]:
    """SIGTERM (the agent stopping) ends the write with a Failed report instead of a silent kill."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("the write was interrupted by SIGTERM (the agent is stopping)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class WriteImageStep(Step[WriteImageParams]):
    step_type = "write-image"
    default_timeout = DEFAULT_TIMEOUT

    def parse_args(self, args: list[str]) -> WriteImageParams:
        return parse_params(args)

    def timeout(self, params: WriteImageParams) -> float:
        return params.timeout

    def run(self, params: WriteImageParams, ctx: StepContext) -> StepResult:
        progress = ProgressReporter(
            ctx, params.infra_env_id or ctx.config.infra_env_id or None, params.host_id or ctx.config.host_id
        )
        try:
            with _sigterm_aborts():
                output = self._install(params, ctx, progress)
        except AgentError as exc:
            progress.stage(FAILED, redact_url(exc.message)[:1000])
            raise
        except Exception as exc:
            progress.stage(FAILED, redact_url(f"{type(exc).__name__}: {exc}")[:1000])
            raise
        output["progress"] = [f"{stage} {info}".strip() for stage, info in progress.sent]
        return StepResult(output)

    def _install(
        self, params: WriteImageParams, ctx: StepContext, progress: ProgressReporter
    ) -> dict[str, Any]:
        progress.stage(STARTING, params.role)
        device = disk_safety.check_target(
            ctx.host, params.target_device, disk_id=params.disk_id, expected_size=params.disk_size_bytes,
            image_size=params.image_size,
        )
        others = [disk_safety.check_target(ctx.host, path) for path in params.format_disks]
        others = [d for d in others if d.path != device.path]  # the target itself is wiped anyway
        ignition = ignition_for(params, ctx)
        source = open_source(ctx, params.image_url)
        try:
            reader = HashingReader(source)
            kind = params.compression
            if kind == "auto":
                kind = detect(reader.peek(8))
            progress.stage(INSTALLING, params.role)
            target = str(ctx.host.path(device.path))
            writer = DeviceWriter(target, device.size_bytes, device.logical_block_size)
            try:
                format_disks(ctx, others)
                stats = self._write(params, reader, kind, writer, progress, ctx.config.progress)
            finally:
                writer.close()
        finally:
            source.close()
        output = self._finish(params, ctx, device, ignition, stats)
        if others:
            output["formatted_disks"] = [d.path for d in others]
        return output

    def _write(
        self, params: WriteImageParams, reader: HashingReader, kind: str, writer: DeviceWriter,
        progress: ProgressReporter, show: bool = False,
    ) -> WriteStats:
        started = time.monotonic()
        writer.wipe()
        stream = raw_stream(reader, kind)
        total_raw = params.image_size

        done = [0]
        shown = terminal.meter(f"writing {writer.path}", total_raw or None, show=show)  # agent step's terminal only

        def on_progress(written: int) -> None:
            done[0] = written
            shown.update(written)
            if total_raw:
                progress.percent(written * 100 // total_raw)
            elif reader.source.total:
                progress.percent(reader.source.consumed * 100 // reader.source.total)

        progress.percent(0)
        try:
            # An uncompressed image is hashed once, by the pipeline's hashing stage (as served and as written
            # are the same bytes); the decompressed stream of a compressed one only when raw_sha256 asks for
            # it, since on a small machine that second hash competes with the decompressor for the CPU.
            hash_raw = kind == "none" or params.raw_sha256 is not None
            written, raw_sha = stream_image(stream, writer, on_progress=on_progress, hash_raw=hash_raw)
            image_sha = raw_sha if kind == "none" else reader.sha.hexdigest()
            check_written(params, written, image_sha, raw_sha)
            writer.sync()
        except BaseException:
            shown.finish(failed=True)
            writer.erase_tail(done[0])
            raise
        shown.finish()
        writer.commit_head()
        progress.percent(100)
        return WriteStats(written, raw_sha, image_sha, kind, time.monotonic() - started)

    def _finish(
        self, params: WriteImageParams, ctx: StepContext, device: disk_safety.BlockDevice,
        ignition: bytes | None, stats: WriteStats,
    ) -> dict[str, Any]:
        table = bootfs.read_gpt(ctx.host, device.path, device.logical_block_size)
        output: dict[str, Any] = {
            "device": device.path,
            "bytes_written": stats.bytes_written,
            "image_sha256": stats.image_sha256,
            "compression": stats.compression,
            "seconds": round(stats.seconds, 3),
            "partitions": [p.name for p in table.partitions],
        }
        if stats.raw_sha256:
            output["raw_sha256"] = stats.raw_sha256
        if needs_placement(params, ignition):
            output.update(place(ctx, device.path, table, ignition, params))
        return output
