"""write-image's HashingReader: image_sha256 over exactly the bytes consumed, peeked bytes counted once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from steps.write_image.hashing import PEEK_READ, HashingReader
from steps.write_image.sources import FileSource


def _file(tmp_path: Path, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    (tmp_path / "image").write_bytes(data)
    return str(tmp_path / "image"), data


def test_peek_then_read_yields_every_byte_once_and_hashes_them_once(tmp_path: Path) -> None:
    path, data = _file(tmp_path, PEEK_READ + 12345)
    reader = HashingReader(FileSource(path))
    assert reader.peek(8) == data[:8] and reader.peek(8) == data[:8]  # peeking does not consume
    got = bytearray()
    buf = memoryview(bytearray(1 << 20))
    got += reader.read(5)
    while n := reader.readinto(buf):
        got += buf[:n]
    assert bytes(got) == data
    assert reader.sha.hexdigest() == hashlib.sha256(data).hexdigest()


def test_peek_past_the_end_returns_what_there_is(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 100)
    reader = HashingReader(FileSource(path))
    assert reader.peek(1000) == data
    assert reader.read(1000) == data and reader.read(1000) == b""
    assert reader.sha.hexdigest() == hashlib.sha256(data).hexdigest()


def test_readinto_without_hashing_leaves_the_hash_to_the_pipeline(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 4096)
    reader = HashingReader(FileSource(path))
    reader.hashing = False
    buf = memoryview(bytearray(8192))
    assert reader.readinto(buf) == 4096 and bytes(buf[:4096]) == data
    assert reader.sha.hexdigest() == hashlib.sha256(b"").hexdigest()
