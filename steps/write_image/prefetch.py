"""The source read ahead in a thread of its own, for a decompressor that runs in this process (zstd)."""

from __future__ import annotations

import queue
import threading
from typing import Any

from common.errors import AgentError
from steps.write_image.errors import WriteFailed
from steps.write_image.hashing import HashingReader


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
