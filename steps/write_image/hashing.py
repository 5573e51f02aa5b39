"""The image as served, hashed on its way in: ``image_sha256`` is proved over exactly the bytes consumed."""

from __future__ import annotations

import hashlib

from steps.write_image.sources import Source

#: What one read of the source asks for while the first bytes are being peeked at.
PEEK_READ = 4 << 20


class HashingReader:
    """The source as served, hashed (image_sha256) as it is consumed; its first bytes can be peeked at."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.sha = hashlib.sha256()
        self.hashing = True
        self._pending = b""

    def peek(self, n: int) -> bytes:
        while len(self._pending) < n:
            more = self.source.read(PEEK_READ)
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
