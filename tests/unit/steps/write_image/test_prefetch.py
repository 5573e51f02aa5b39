"""write-image's Prefetcher: the source read ahead in a thread, every byte delivered in order, errors kept."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from common.errors import InvalidStepArguments
from steps.write_image.errors import WriteFailed
from steps.write_image.hashing import HashingReader
from steps.write_image.prefetch import Prefetcher
from steps.write_image.sources import FileSource


def test_every_byte_in_order_and_hashed(tmp_path: Path) -> None:
    data = os.urandom(5 * (1 << 20) + 7)
    (tmp_path / "img").write_bytes(data)
    reader = HashingReader(FileSource(str(tmp_path / "img")))
    chunks: list[int] = []
    ahead = Prefetcher(reader, on_chunk=lambda c: chunks.append(len(c)), depth=2)
    got = bytearray()
    got += ahead.read(3)
    while piece := ahead.read(300_000):
        got += piece
    ahead.check()
    assert bytes(got) == data and ahead.read() == b""
    assert sum(chunks) == len(data) and chunks[-1] == 0  # the end was seen
    assert reader.sha.hexdigest() == hashlib.sha256(data).hexdigest()


class Broken:
    """A source that breaks after its first read (a reset connection, a failing disk)."""

    def __init__(self, exc: BaseException) -> None:
        self.total: int | None = None
        self.consumed = 0
        self.exc = exc
        self.calls = 0

    def read(self, n: int) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise self.exc
        return b"x" * 10

    def readinto(self, buf: memoryview) -> int:
        raise NotImplementedError

    def close(self) -> None:
        return


def test_a_source_error_ends_the_stream_and_is_raised_by_check() -> None:
    ahead = Prefetcher(HashingReader(Broken(OSError("connection reset"))))
    assert ahead.read() == b"x" * 10 and ahead.read() == b""
    with pytest.raises(WriteFailed, match="reading the image failed: connection reset"):
        ahead.check()


def test_an_agent_error_of_the_source_is_raised_as_it_is() -> None:
    ahead = Prefetcher(HashingReader(Broken(InvalidStepArguments("bad"))))
    while ahead.read():
        pass
    with pytest.raises(InvalidStepArguments, match="bad"):
        ahead.check()


def test_stop_ends_a_reader_that_is_waiting() -> None:
    class Slow(Broken):
        def read(self, n: int) -> bytes:
            return b"y"

    ahead = Prefetcher(HashingReader(Slow(OSError())), depth=1)
    ahead.stop()
    for _ in range(10):  # what was queued drains, then the stopped stream ends
        if not ahead.read():
            break
    else:
        pytest.fail("a stopped prefetcher kept delivering")
