"""``write-image``: stream an OS image onto the installation disk, prove it, and prepare its first boot.

This is the native replacement for the installer container's ``coreos-installer install``. The order of
operations is what makes it safe:

1. Parse and check everything that can be checked without touching the disk: arguments, the target
   (:mod:`steps.lib.disk_safety`), the Ignition (fetched before the first byte is written), the image source.
2. Wipe the old partition tables (first and last MiB of the disk), so a failed write leaves an empty disk,
   never a half-valid table pointing at half-written data.
3. Stream the image, decompressing on the fly and hashing while writing; the first MiB (protective MBR and
   primary GPT) is kept in memory and written only after the rest is on the disk, synced and its checksums
   verified. Until then the disk has no valid partition table.
4. Read the GPT back from the disk, mount the ``boot`` partition, place the Ignition and kernel arguments,
   and read them back too.

Checksums: ``image_sha256`` is the SHA-256 of the bytes as served (the compressed file, what mirrors publish
next to the image); ``raw_sha256`` is that of the decompressed disk image (what lands on the disk). Either or
both may be given; at least one is required. The decompressed stream of a compressed image is hashed only
when ``raw_sha256`` is given: on a two-core host that second hash takes CPU time from the decompressor.

Throughput: the source is read and decompressed in producer threads (xz by the ``xz`` tool in its own
process, zstd by libzstd in this one, gzip by zlib) into a small pool of page-aligned 4 MiB buffers, which a
hashing thread takes in order and the main thread writes with O_DIRECT: reading, decompression, hashing and
writing overlap, a raw image goes at the speed of SHA-256 itself, and memory stays bounded (< 64 MiB).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import lzma
import mmap
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any, Protocol, cast
from urllib.parse import urlsplit

from agent.errors import AgentError, InvalidStepArguments, StepError, UnsafeTarget
from steps.base import Step, StepContext, StepResult, get_field, json_arg, uuid_field
from steps.lib import bootfs, disk_safety
from steps.lib.progress import FAILED, INSTALLING, STARTING, ProgressReporter

STEP = "write-image"
CHUNK = 4 << 20
POOL = 4
#: The region written last: protective MBR, primary GPT header and partition array all live here.
HEAD = 1 << 20
COMPRESSIONS = ("auto", "none", "gzip", "xz", "zstd")
MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
DEFAULT_TIMEOUT = 3600.0
#: Seconds a stalled download may stay silent before the write fails.
READ_TIMEOUT = 60.0


class WriteFailed(StepError):
    """The image could not be written as asked (checksum, short download, disk full, I/O error)."""

    code = "write-image-failed"


class Interrupted(StepError):
    code = "write-image-interrupted"
    exit_code = 143


@dataclass(frozen=True)
class WriteImageParams:
    image_url: str
    target_device: str
    compression: str = "auto"
    image_sha256: str | None = None
    raw_sha256: str | None = None
    image_size: int | None = None
    disk_id: str | None = None
    disk_size_bytes: int | None = None
    ignition: str | None = None
    ignition_from_service: bool = False
    append_kargs: list[str] = field(default_factory=list)
    delete_kargs: list[str] = field(default_factory=list)
    format_disks: list[str] = field(default_factory=list)
    infra_env_id: str | None = None
    host_id: str | None = None
    role: str = ""
    timeout: float = DEFAULT_TIMEOUT


# -- argument parsing --------------------------------------------------------------------------------------


def _str_list(obj: dict[str, Any], name: str) -> list[str]:
    value = get_field(STEP, obj, name, list, required=False, default=[])
    for item in value:
        if not isinstance(item, str) or not item or any(c.isspace() for c in item):
            raise InvalidStepArguments(f"{STEP}: {name} must list kernel arguments without spaces: {item!r}")
    return list(value)


def parse_params(args: list[str]) -> WriteImageParams:
    if len(args) != 1:
        raise InvalidStepArguments(f"{STEP} expects 1 argument (write_image_request), got {len(args)}")
    obj = json_arg(STEP, args[0], dict)
    url = get_field(STEP, obj, "image_url", str)
    parts = urlsplit(url)
    web = parts.scheme in ("http", "https") and bool(parts.netloc)
    if not (url.startswith("/") or web or parts.scheme == "file"):
        raise InvalidStepArguments(
            f"{STEP}: image_url must be http(s)://, file:// or a path on the service (/...), got {url!r}"
        )
    target = get_field(STEP, obj, "target_device", str)
    if not target.startswith("/dev/") or "\0" in target:
        raise InvalidStepArguments(f"{STEP}: target_device must be a path under /dev/, got {target!r}")
    compression = get_field(STEP, obj, "compression", str, required=False, default="auto")
    if compression not in COMPRESSIONS:
        raise InvalidStepArguments(
            f"{STEP}: compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}"
        )
    sums = {}
    for name in ("image_sha256", "raw_sha256"):
        value = get_field(STEP, obj, name, str, required=False)
        if value is not None and not SHA256_RE.match(value):
            raise InvalidStepArguments(f"{STEP}: {name} must be 64 hexadecimal digits, got {value!r}")
        sums[name] = value.lower() if value else None
    if not any(sums.values()):
        raise InvalidStepArguments(f"{STEP}: image_sha256 or raw_sha256 is required (no unverified writes)")
    sizes = {}
    for name in ("image_size", "disk_size_bytes"):
        value = get_field(STEP, obj, name, int, required=False)
        if value is not None and value <= 0:
            raise InvalidStepArguments(f"{STEP}: {name} must be a positive number of bytes, got {value}")
        sizes[name] = value
    disk_id = get_field(STEP, obj, "disk_id", str, required=False)
    if disk_id is not None and not disk_id.startswith("/dev/"):
        raise InvalidStepArguments(f"{STEP}: disk_id must be a path under /dev/, got {disk_id!r}")
    format_disks = get_field(STEP, obj, "format_disks", list, required=False, default=[])
    for item in format_disks:
        if not isinstance(item, str) or not item.startswith("/dev/") or "\0" in item:
            raise InvalidStepArguments(f"{STEP}: format_disks must list paths under /dev/, got {item!r}")
    ignition = get_field(STEP, obj, "ignition", str, required=False)
    from_service = get_field(STEP, obj, "ignition_from_service", bool, required=False, default=False)
    if ignition is not None and from_service:
        raise InvalidStepArguments(f"{STEP}: give either ignition or ignition_from_service, not both")
    if ignition is not None:
        check_ignition(ignition.encode(), InvalidStepArguments)
    ids = {name: uuid_field(STEP, obj, name, required=False) for name in ("infra_env_id", "host_id")}
    timeout = get_field(STEP, obj, "timeout_seconds", (int, float), required=False, default=DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise InvalidStepArguments(f"{STEP}: timeout_seconds must be positive, got {timeout}")
    return WriteImageParams(
        image_url=url, target_device=target, compression=compression, image_sha256=sums["image_sha256"],
        raw_sha256=sums["raw_sha256"], image_size=sizes["image_size"], disk_id=disk_id,
        disk_size_bytes=sizes["disk_size_bytes"], ignition=ignition, ignition_from_service=from_service,
        append_kargs=_str_list(obj, "append_kargs"), delete_kargs=_str_list(obj, "delete_kargs"),
        format_disks=list(format_disks), infra_env_id=ids["infra_env_id"], host_id=ids["host_id"],
        role=get_field(STEP, obj, "role", str, required=False, default=""), timeout=float(timeout),
    )


def check_ignition(data: bytes, error: type[AgentError]) -> None:
    """An Ignition config is a JSON object with ``ignition.version``; anything else would brick first boot."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise error(f"{STEP}: the Ignition config is not valid JSON: {exc}") from exc
    version = doc.get("ignition", {}).get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str):
        raise error(f"{STEP}: the Ignition config has no ignition.version")


# -- image sources -----------------------------------------------------------------------------------------


class Source(Protocol):
    total: int | None
    consumed: int

    def read(self, n: int) -> bytes: ...

    def readinto(self, buf: memoryview) -> int: ...

    def close(self) -> None: ...


class FileSource:
    def __init__(self, path: str) -> None:
        try:
            self._fh: io.FileIO = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise WriteFailed(f"cannot open the image {path}: {exc.strerror}") from exc
        self.total: int | None = os.fstat(self._fh.fileno()).st_size
        self.consumed = 0

    def read(self, n: int) -> bytes:
        try:
            data = self._fh.read(n) or b""
        except OSError as exc:
            raise WriteFailed(f"reading the image failed: {exc.strerror}") from exc
        self.consumed += len(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        try:
            n = self._fh.readinto(buf) or 0
        except OSError as exc:
            raise WriteFailed(f"reading the image failed: {exc.strerror}") from exc
        self.consumed += n
        return n

    def close(self) -> None:
        self._fh.close()


class HttpSource:
    def __init__(self, ctx: StepContext, url: str) -> None:
        import requests

        from agent.client import build_session

        if url.startswith("/"):
            session = ctx.client.session
            url = ctx.config.url.rstrip("/") + url
        else:
            session = build_session(ctx.config)
            if _origin(url) != _origin(ctx.config.url):
                session.headers.pop("X-Secret-Key", None)  # the agent token is for the service only
        self.url = url
        try:
            self._resp = session.get(
                url, stream=True, timeout=(10.0, READ_TIMEOUT), headers={"Accept-Encoding": "identity"}
            )
        except requests.RequestException as exc:
            raise WriteFailed(f"cannot download the image from {url}: {_short(exc)}") from exc
        if self._resp.status_code != 200:
            self._resp.close()
            raise WriteFailed(f"downloading the image from {url} failed: HTTP {self._resp.status_code}")
        length = self._resp.headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.consumed = 0

    def read(self, n: int) -> bytes:
        with self._broken_stream():
            data: bytes = self._resp.raw.read(n)
        self._check(len(data))
        return data

    def readinto(self, buf: memoryview) -> int:
        with self._broken_stream():
            n: int = self._resp.raw.readinto(buf)
        self._check(n)
        return n

    @contextlib.contextmanager
    def _broken_stream(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # urllib3 raises several unrelated types for a broken stream
            raise WriteFailed(
                f"the image download from {self.url} broke after {self.consumed} bytes: {_short(exc)}"
            ) from exc

    def _check(self, n: int) -> None:
        self.consumed += n
        if not n and self.total is not None and self.consumed < self.total:
            raise WriteFailed(f"short download: got {self.consumed} of {self.total} bytes from {self.url}")

    def close(self) -> None:
        self._resp.close()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def open_source(ctx: StepContext, url: str) -> Source:
    if urlsplit(url).scheme == "file":
        return FileSource(urlsplit(url).path)
    return HttpSource(ctx, url)


# -- decompression -----------------------------------------------------------------------------------------


class HashingReader:
    """The source as served, hashed (image_sha256) as it is consumed; its first bytes can be peeked at."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.sha = hashlib.sha256()
        self.hashing = True
        self._pending = b""

    def peek(self, n: int) -> bytes:
        while len(self._pending) < n:
            more = self.source.read(CHUNK)
            if not more:
                break
            self.sha.update(more)
            self._pending += more
        return self._pending[:n]

    def read(self, n: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        data = self.source.read(n)
        self.sha.update(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        """Straight into the caller's (aligned) buffer: no intermediate copy on the raw path."""
        if self._pending:
            n = min(len(buf), len(self._pending))
            buf[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        n = self.source.readinto(buf)
        if self.hashing:
            self.sha.update(buf[:n])
        return n


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


class Prefetcher:
    """The source read (and hashed, by the HashingReader) ahead in a thread of its own, so fetching and hashing
    the input overlap the decompression instead of taking turns with it. At the end of the source, or after
    an error (kept for :meth:`check`), :meth:`read` returns ``b""``."""

    def __init__(self, reader: HashingReader, on_chunk: Any = None, depth: int = 8) -> None:
        self.error: BaseException | None = None
        self._chunks: queue.Queue[bytes] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._rest = b""
        self._eof = False
        threading.Thread(target=self._run, args=(reader, on_chunk), name="image-prefetch", daemon=True).start()

    def _run(self, reader: HashingReader, on_chunk: Any) -> None:
        try:
            while not self._stop.is_set():
                data = reader.read(1 << 20)
                if on_chunk is not None:
                    on_chunk(data)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # reported by check(): the source's reason beats the decompressor's
            self.error = exc
            self._put(b"")

    def _put(self, data: bytes) -> None:
        while not self._stop.is_set():
            try:
                self._chunks.put(data, timeout=0.5)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1) -> bytes:
        while not self._rest and not self._eof:
            try:
                self._rest = self._chunks.get(timeout=0.5)
                self._eof = not self._rest
            except queue.Empty:
                self._eof = self._stop.is_set()
        if n < 0 or n >= len(self._rest):
            data, self._rest = self._rest, b""
        else:
            data, self._rest = self._rest[:n], self._rest[n:]
        return data

    def check(self) -> None:
        """Raise what went wrong reading the source, if anything did (set before the end is signalled)."""
        if isinstance(self.error, AgentError):
            raise self.error
        if self.error is not None:
            raise WriteFailed(f"reading the image failed: {self.error}")

    def stop(self) -> None:
        self._stop.set()


class ZstdFrames:
    """Follows the frame structure of a zstd stream as it passes (RFC 8878 section 3.1), only to tell at its
    end whether its last frame was complete: libzstd's streaming reader takes a stream cut at a frame's middle
    for a clean end, where ``zstd -dc`` reports it truncated."""

    MAGIC = 0xFD2FB528

    def __init__(self) -> None:
        self._header = b""
        self._need = 4  # bytes of the next header (magic, descriptor, block header, skippable size)
        self._state = "magic"
        self._skip = 0  # bytes to pass over (header fields, block contents, checksum)
        self._checksum = False
        self.frames = 0

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._header and not self._skip and self.frames > 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._state != "unknown":
            if self._skip:
                k = min(self._skip, len(view))
                self._skip -= k
                view = view[k:]
                continue
            take = min(self._need - len(self._header), len(view))
            self._header += bytes(view[:take])
            view = view[take:]
            if len(self._header) == self._need:
                value, self._header = int.from_bytes(self._header, "little"), b""
                self._advance(value)

    def _advance(self, value: int) -> None:
        if self._state == "magic":
            if value == self.MAGIC:
                self._state, self._need = "descriptor", 1
            elif value & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                self._state = "unknown"  # not zstd: the decompressor says so in its own words
        elif self._state == "skippable":
            self._state, self._need, self._skip = "magic", 4, value
            self.frames += 1
        elif self._state == "descriptor":
            single_segment = value >> 5 & 1
            content_size = (1 if single_segment else 0, 2, 4, 8)[value >> 6]
            self._skip = (0 if single_segment else 1) + (0, 1, 2, 4)[value & 3] + content_size
            self._checksum = bool(value >> 2 & 1)
            self._state, self._need = "block", 3
        else:  # block header: last-block bit, type, size
            last, kind, size = value & 1, value >> 1 & 3, value >> 3
            self._skip = 1 if kind == 1 else size  # an RLE block holds one byte
            if last:
                self._skip += 4 if self._checksum else 0
                self._state, self._need = "magic", 4
                self.frames += 1


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


# -- the writer --------------------------------------------------------------------------------------------


@dataclass
class WriteStats:
    bytes_written: int = 0
    raw_sha256: str = ""
    image_sha256: str = ""
    compression: str = "none"
    seconds: float = 0.0


class DeviceWriter:
    """Writes the image: the body first with O_DIRECT in large aligned blocks, the first MiB last."""

    def __init__(self, path: str, size: int, block: int) -> None:
        self.path = path
        self.size = size
        self.block = block
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise UnsafeTarget(f"refusing to write to {path}: the device is busy (in use)") from exc
            raise WriteFailed(f"cannot open {path} for writing: {exc.strerror}") from exc
        try:
            self.direct_fd: int | None = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            self.direct_fd = None  # a device without O_DIRECT support still gets written, through the cache
        self.head = bytearray()
        self._sector_checked = False

    def close(self) -> None:
        for fd in (self.direct_fd, self.fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def wipe(self) -> None:
        """Zero the first and last MiB: old MBR/GPT, backup GPT and RAID superblocks at the end are gone."""
        zeros = bytes(min(HEAD, self.size))
        self._pwrite(self.fd, zeros, 0)
        self._pwrite(self.fd, zeros, max(0, self.size - len(zeros)))
        self.sync()

    def write(self, buf: memoryview, offset: int) -> None:
        if offset + len(buf) > self.size:
            raise WriteFailed(
                f"the image does not fit: it is larger than {self.path} ({self.size} bytes)",
                hint="choose a larger installation disk",
            )
        if offset < HEAD:
            keep = min(len(buf), HEAD - offset)
            self.head += buf[:keep]
            buf, offset = buf[keep:], offset + keep
            if len(self.head) >= 2 * 4096:
                self.check_sector_size()
        if not buf:
            return
        aligned = len(buf) - len(buf) % self.block
        if self.direct_fd is not None and aligned and offset % self.block == 0:
            self._pwrite(self.direct_fd, buf[:aligned], offset)
            buf, offset = buf[aligned:], offset + aligned
        if buf:
            self._pwrite(self.fd, buf, offset)

    def check_sector_size(self) -> None:
        """Refuse, before the body is written, an image whose GPT is laid out for another sector size: a
        512-byte image on a 4K-native disk (or the reverse) would not boot, as coreos-installer also checks."""
        if self._sector_checked:
            return
        self._sector_checked = True
        found = [size for size in (512, 4096) if self.head[size : size + 8] == bootfs.GPT_SIGNATURE]
        if not found:
            raise WriteFailed("the image is not a GPT disk image (no GPT header at sector 1)")
        if self.block not in found:
            raise WriteFailed(
                f"the image is laid out for {found[0]}-byte sectors but {self.path} has {self.block}-byte sectors",
                hint="use the image built for this disk's sector size (e.g. the 4K image for 4Kn disks)",
            )

    def _pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.pwrite(fd, view, offset)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise WriteFailed(f"the disk {self.path} is full at offset {offset}") from exc
                raise WriteFailed(f"writing {self.path} at offset {offset} failed: {exc.strerror}") from exc
            if n == 0:
                raise WriteFailed(f"the disk {self.path} is full at offset {offset}")
            view, offset = view[n:], offset + n

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise WriteFailed(f"flushing {self.path} to the disk failed: {exc.strerror}") from exc

    def commit_head(self) -> None:
        """Write the partition tables: from now on the disk holds the new image."""
        self.check_sector_size()
        self._pwrite(self.fd, bytes(self.head), 0)
        self.sync()

    def erase_tail(self, end: int) -> None:
        """After a failed write: also remove the image's backup GPT, so no tool resurrects a partial table."""
        with contextlib.suppress(WriteFailed):
            start = max(HEAD, end - HEAD)
            if end > start:
                self._pwrite(self.fd, bytes(end - start), start)
                self.sync()


def stream_image(
    stream: RawStream,
    writer: DeviceWriter,
    *,
    on_progress: Any = None,
    abort: threading.Event | None = None,
    hash_raw: bool = True,
) -> tuple[int, str]:
    """Pump the decompressed image into the device; returns (bytes written, raw SHA-256 or "" if not hashed).

    Three stages, each a thread, handing a small pool of buffers along in order: read (or decompress), hash,
    write. SHA-256 is the slowest of them on a raw image, so it runs on its own core rather than after the read.
    """
    abort = abort or threading.Event()
    pool = [mmap.mmap(-1, CHUNK) for _ in range(POOL)]
    free: queue.Queue[mmap.mmap] = queue.Queue()
    for buf in pool:
        free.put(buf)
    full: queue.Queue[tuple[mmap.mmap, int] | BaseException | None] = queue.Queue()
    hashed = queue.Queue() if hash_raw else full
    raw_sha = hashlib.sha256()

    def produce() -> None:
        try:
            while not abort.is_set():
                buf = free.get()
                view = memoryview(buf)
                n = 0
                while n < CHUNK:
                    got = stream.readinto(view[n:])
                    if not got:
                        break
                    n += got
                view.release()
                if n:
                    full.put((buf, n))
                if n < CHUNK:
                    stream.finish()
                    full.put(None)
                    return
        except BaseException as exc:
            full.put(exc)

    def hash_in_order() -> None:
        while not abort.is_set():
            try:
                item = full.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(item, tuple):
                with memoryview(item[0]) as view:
                    raw_sha.update(view[: item[1]])
            hashed.put(item)
            if not isinstance(item, tuple):
                return

    stages = [threading.Thread(target=produce, name="image-producer", daemon=True)]
    if hash_raw:
        stages.append(threading.Thread(target=hash_in_order, name="image-hasher", daemon=True))
    for stage in stages:
        stage.start()
    offset = 0
    try:
        while True:
            try:
                item = hashed.get(timeout=1.0)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            view = memoryview(buf)
            try:
                writer.write(view[:n], offset)
            finally:
                view.release()
            offset += n
            free.put(buf)
            if on_progress is not None:
                on_progress(offset)
    except BaseException:
        abort.set()
        stream.abort()
        free.put(pool[0])  # unblock a producer waiting for a buffer
        raise
    for stage in stages:
        stage.join()
    return offset, raw_sha.hexdigest() if hash_raw else ""


def format_disks(ctx: StepContext, disks: list[disk_safety.BlockDevice]) -> None:
    """Zero the first sector of each disk, as the installer's --format-disk does: with no MBR (and so no
    protective MBR for a GPT) firmware and bootloaders find no old operating system to boot there."""
    for dev in disks:
        try:
            fd = os.open(str(ctx.host.path(dev.path)), os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise UnsafeTarget(f"refusing to format {dev.path}: cannot open it exclusively ({exc.strerror})") from exc
        try:
            os.pwrite(fd, bytes(512), 0)
            os.fsync(fd)
        except OSError as exc:
            raise WriteFailed(f"formatting {dev.path} failed: {exc.strerror}") from exc
        finally:
            os.close(fd)


# -- the step ----------------------------------------------------------------------------------------------


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
            progress.stage(FAILED, exc.message[:1000])
            raise
        except Exception as exc:
            progress.stage(FAILED, f"{type(exc).__name__}: {exc}"[:1000])
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
        ignition = self._ignition(params, ctx)
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
                stats = self._write(params, reader, kind, writer, progress)
            finally:
                writer.close()
        finally:
            source.close()
        output = self._finish(params, ctx, device, ignition, stats)
        if others:
            output["formatted_disks"] = [d.path for d in others]
        return output

    def _ignition(self, params: WriteImageParams, ctx: StepContext) -> bytes | None:
        if params.ignition is not None:
            return params.ignition.encode()
        if not params.ignition_from_service:
            return None
        ie = params.infra_env_id or ctx.config.infra_env_id
        host = params.host_id or ctx.config.host_id
        if not ie or not host:
            raise InvalidStepArguments(f"{STEP}: ignition_from_service needs infra_env_id and host_id")
        resp = ctx.client.request(
            "GET", f"/v2/infra-env/{ie}/hosts/{host}/downloads/ignition",
            headers={"Accept": "application/octet-stream"},
        )
        data = resp.content
        check_ignition(data, WriteFailed)
        return data

    def _write(
        self, params: WriteImageParams, reader: HashingReader, kind: str, writer: DeviceWriter,
        progress: ProgressReporter,
    ) -> WriteStats:
        started = time.monotonic()
        writer.wipe()
        stream = raw_stream(reader, kind)
        total_raw = params.image_size

        done = [0]

        def on_progress(written: int) -> None:
            done[0] = written
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
            if params.image_size is not None and written != params.image_size:
                raise WriteFailed(f"the image is {written} bytes, not {params.image_size} as requested")
            if params.image_sha256 and image_sha != params.image_sha256:
                raise WriteFailed(f"image checksum mismatch: expected {params.image_sha256}, got {image_sha}")
            if params.raw_sha256 and raw_sha != params.raw_sha256:
                raise WriteFailed(f"raw image checksum mismatch: expected {params.raw_sha256}, got {raw_sha}")
            if written < 2 * HEAD:
                raise WriteFailed(f"the image is only {written} bytes: too small to be a disk image")
            writer.sync()
        except BaseException:
            writer.erase_tail(done[0])
            raise
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
        boot = table.find(bootfs.BOOT_PARTITION_NAME)
        if ignition is None and not params.append_kargs and not params.delete_kargs:
            return output
        if boot is None:
            raise WriteFailed(f"the image has no partition named {bootfs.BOOT_PARTITION_NAME!r}")
        part = bootfs.reread_partitions(ctx.host, device.path, boot.number)
        with bootfs.mounted(ctx.host, part, read_only=False) as root:
            if ignition is not None:
                bootfs.place_ignition(root, ignition)
            if params.append_kargs or params.delete_kargs:
                bootfs.edit_kargs(root, params.append_kargs, params.delete_kargs)
        with bootfs.mounted(ctx.host, part, read_only=True) as root:
            if ignition is not None and (root / bootfs.IGNITION_PATH).read_bytes() != ignition:
                raise WriteFailed("the Ignition read back from the boot partition is not the one written")
            kargs = bootfs.read_kargs(root)
        for entry, args in kargs.items():
            if any(a not in args for a in params.append_kargs) or any(a in args for a in params.delete_kargs):
                raise WriteFailed(f"the kernel arguments read back from {entry} are not what was written")
        output["boot_partition"] = part
        if ignition is not None:
            output["ignition_sha256"] = hashlib.sha256(ignition).hexdigest()
        output["kargs"] = kargs
        return output
