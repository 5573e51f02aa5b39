"""The decompressors: the served bytes turned into the disk image, whatever the compression.

Each is a :class:`RawStream` the pipeline fills its buffers from: the image as served (``none``), xz by the
``xz`` tool in its own process (or ``lzma`` in this one without it), gzip by ``zlib``, zstd by libzstd.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import lzma
import os
import shutil
import subprocess
import threading
import zlib
from typing import IO, Any, Protocol, cast

from common.errors import AgentError
from steps.write_image.errors import WriteFailed
from steps.write_image.hashing import HashingReader
from steps.write_image.prefetch import Prefetcher
from steps.write_image.zstd_frames import ZstdFrames

MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


def detect(head: bytes) -> str:
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    return "none"


class RawStream(Protocol):
    def readinto(self, buf: memoryview) -> int: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class PlainStream:
    """The image as served: hashed by the pipeline's own hashing stage, not by the reader."""

    def __init__(self, reader: HashingReader) -> None:
        self.reader = reader
        reader.hashing = False

    def readinto(self, buf: memoryview) -> int:
        return self.reader.readinto(buf)

    def finish(self) -> None:
        return None

    def abort(self) -> None:
        return None


class InlineStream:
    """Decompression in this process: gzip always, xz when the ``xz`` tool is not installed.

    Output is produced at most ``room`` bytes at a time and input is read only when the decompressor asks
    for it, so memory stays bounded whatever the compression ratio. Concatenated streams (as ``xz -dc`` and
    ``gzip -dc`` accept them) are followed; a stream that ends before its end marker is a truncated image.
    """

    INPUT = 1 << 20

    def __init__(self, reader: HashingReader, kind: str) -> None:
        self.reader = reader
        self.kind = kind
        self._dec = self._new()
        self._input = b""

    def _new(self) -> Any:
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=31)
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def readinto(self, buf: memoryview) -> int:
        filled = 0
        while filled < len(buf):
            out = self._next(len(buf) - filled)
            if out is None:
                break
            buf[filled : filled + len(out)] = out
            filled += len(out)
        return filled

    def _next(self, room: int) -> bytes | None:
        """Up to ``room`` more bytes of output (possibly none yet), or None at the clean end of the image."""
        dec = self._dec
        if dec.eof:
            # what follows the stream's end (zlib reports it in both unused_data and unconsumed_tail)
            rest = dec.unused_data or self._input or self.reader.read(self.INPUT)
            if not rest:
                return None
            self._dec, self._input = self._new(), rest
            return b""
        if self.kind == "gzip" and not self._input:
            pending = bytes(dec.decompress(b"", room))  # output zlib may still hold for the input it consumed
            if pending or dec.eof:
                return pending
        needs_input = dec.needs_input if self.kind == "xz" else not self._input
        if needs_input and not self._input:
            self._input = self.reader.read(self.INPUT)
            if not self._input:
                raise WriteFailed(f"the {self.kind} image is truncated (the compressed stream ends early)")
        try:
            if self.kind == "xz":
                out = bytes(dec.decompress(self._input, max_length=room))
                self._input = b""
            else:
                out = bytes(dec.decompress(self._input, room))
                self._input = dec.unconsumed_tail
        except (zlib.error, lzma.LZMAError) as exc:
            raise WriteFailed(f"the {self.kind} image is corrupt: {exc}") from exc
        return out

    def finish(self) -> None:
        return None

    def abort(self) -> None:
        return None


class ProcessStream:
    """Decompression by ``xz -dc`` in its own process, fed by a thread hashing the input. ``-T0``: an image
    compressed in several blocks (as ``xz -T`` writes them) is decompressed on every core, twice as fast on
    two; xz before 5.4 accepts the flag and decompresses on one."""

    def __init__(self, reader: HashingReader, tool: str) -> None:
        self.reader = reader
        self.tool = os.path.basename(tool)
        self.proc = subprocess.Popen(
            [tool, "-dc", "-T0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ: fewer, larger transfers
        self._out = cast(io.RawIOBase, self.proc.stdout)
        self.feed_error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="image-feeder", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while True:
                data = self.reader.read(1 << 20)
                if not data:
                    break
                stdin.write(data)
        except BaseException as exc:  # reported by finish(): the source's reason beats "unexpected end"
            self.feed_error = exc
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def readinto(self, buf: memoryview) -> int:
        filled = 0
        while filled < len(buf):
            n = self._out.readinto(buf[filled:])
            if not n:
                break
            filled += n
        return filled

    def finish(self) -> None:
        self._feeder.join()
        code = self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
        if self.feed_error is not None:
            if isinstance(self.feed_error, AgentError):
                raise self.feed_error
            raise WriteFailed(f"feeding the image to {self.tool} failed: {self.feed_error}")
        if code != 0:
            reason = err or f"exit {code}"
            raise WriteFailed(f"the compressed image is corrupt or truncated: {self.tool}: {reason}")

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()


class ZstdStream:
    """zstd decompressed in this process by libzstd (the ``zstandard`` module, which releases the GIL while it
    works), fed by a :class:`Prefetcher`: no second process and no pipe to copy every byte through, which
    is what keeps the whole pipeline close to the bare decompressor's speed."""

    def __init__(self, reader: HashingReader) -> None:
        import zstandard

        self._error = zstandard.ZstdError
        self.frames = ZstdFrames()
        self.feed = Prefetcher(reader, on_chunk=self.frames.feed)
        source = cast(IO[bytes], self.feed)  # read() is all the reader calls
        self._out = zstandard.ZstdDecompressor().stream_reader(source, read_size=1 << 20, read_across_frames=True)

    def readinto(self, buf: memoryview) -> int:
        try:
            return int(self._out.readinto(buf))
        except self._error as exc:
            self.feed.stop()
            self.feed.check()  # a broken download explains a broken stream
            raise WriteFailed(f"the compressed image is corrupt or truncated: zstd: {exc}") from exc

    def finish(self) -> None:
        self.feed.check()
        if not self.frames.complete:
            raise WriteFailed("the compressed image is corrupt or truncated: zstd: the stream ends inside a frame")

    def abort(self) -> None:
        self.feed.stop()


def raw_stream(reader: HashingReader, kind: str) -> RawStream:
    if kind == "none":
        return PlainStream(reader)
    if kind == "zstd":
        return ZstdStream(reader)
    tool = shutil.which("xz") if kind == "xz" else None
    return ProcessStream(reader, tool) if tool else InlineStream(reader, kind)
