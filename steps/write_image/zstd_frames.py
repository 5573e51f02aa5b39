"""The frame structure of a zstd stream, followed as it passes: a pure state machine over the bytes."""

from __future__ import annotations


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
