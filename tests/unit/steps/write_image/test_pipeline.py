"""write-image's pipeline: read, hash and write in their threads, every byte at its offset, the raw SHA-256
of exactly what was written, and a failing stage stopping the others."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from steps.lib.bootfs import GPT_SIGNATURE
from steps.write_image.checks import HEAD
from steps.write_image.decompress import raw_stream
from steps.write_image.errors import WriteFailed
from steps.write_image.hashing import HashingReader
from steps.write_image.pipeline import CHUNK, stream_image
from steps.write_image.sources import FileSource
from steps.write_image.writer import DeviceWriter


def _image(tmp_path: Path, size: int) -> bytes:
    image = bytearray(os.urandom(size))
    image[512:520] = GPT_SIGNATURE
    (tmp_path / "image").write_bytes(image)
    return bytes(image)


def _disk(tmp_path: Path, size: int) -> DeviceWriter:
    (tmp_path / "disk").write_bytes(bytes(size))
    return DeviceWriter(str(tmp_path / "disk"), size, 512)


def test_the_image_lands_whole_and_hashed(tmp_path: Path) -> None:
    image = _image(tmp_path, CHUNK + 12345)  # a full buffer and a partial one
    writer = _disk(tmp_path, 2 * CHUNK)
    seen: list[int] = []
    stream = raw_stream(HashingReader(FileSource(str(tmp_path / "image"))), "none")
    written, sha = stream_image(stream, writer, on_progress=seen.append)
    writer.commit_head()
    writer.close()
    assert written == len(image) and sha == hashlib.sha256(image).hexdigest()
    assert (tmp_path / "disk").read_bytes()[: len(image)] == image
    assert seen == [CHUNK, len(image)]


def test_without_hash_raw_no_hash_is_reported(tmp_path: Path) -> None:
    image = _image(tmp_path, 2 * HEAD)
    writer = _disk(tmp_path, 4 * HEAD)
    stream = raw_stream(HashingReader(FileSource(str(tmp_path / "image"))), "none")
    assert stream_image(stream, writer, hash_raw=False) == (len(image), "")
    writer.close()


def test_a_writer_failure_stops_the_pipeline_and_is_raised(tmp_path: Path) -> None:
    _image(tmp_path, 2 * CHUNK)
    writer = _disk(tmp_path, CHUNK + HEAD)  # too small for the image
    stream = raw_stream(HashingReader(FileSource(str(tmp_path / "image"))), "none")
    with pytest.raises(WriteFailed, match="the image does not fit"):
        stream_image(stream, writer)
    writer.close()
