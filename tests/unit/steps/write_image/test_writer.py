"""write-image's DeviceWriter on a plain file: the first MiB held back until commit, the body placed at its
offsets, the disk's size and the image's sector size enforced, old tables wiped and a failed write's tail erased."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from steps.lib.bootfs import GPT_SIGNATURE
from steps.write_image.checks import HEAD
from steps.write_image.errors import WriteFailed
from steps.write_image.writer import DeviceWriter

SIZE = 4 * HEAD


def _disk(tmp_path: Path, fill: bytes = b"\xee") -> Path:
    disk = tmp_path / "disk"
    disk.write_bytes(fill * SIZE)
    return disk


def _image() -> mmap.mmap:
    """Page-aligned memory, as the pipeline's buffers are (O_DIRECT needs aligned addresses as well)."""
    image = mmap.mmap(-1, 3 * HEAD)
    image[:] = os.urandom(3 * HEAD)
    image[512:520] = GPT_SIGNATURE
    image[4096:4104] = b"\0" * 8
    return image


def test_wipe_zeroes_the_first_and_last_mib_only(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    writer = DeviceWriter(str(disk), SIZE, 512)
    writer.wipe()
    writer.close()
    data = disk.read_bytes()
    assert data[:HEAD] == bytes(HEAD) and data[-HEAD:] == bytes(HEAD)
    assert data[HEAD:-HEAD] == b"\xee" * (SIZE - 2 * HEAD)


def test_the_head_is_written_only_at_commit(tmp_path: Path) -> None:
    disk, image = _disk(tmp_path), _image()
    writer = DeviceWriter(str(disk), SIZE, 512)
    piece = 3 * 256 * 1024  # the second piece crosses the head's end
    for offset in range(0, len(image), piece):
        writer.write(memoryview(image)[offset : offset + piece], offset)
    writer.sync()
    before = disk.read_bytes()
    assert before[:HEAD] == b"\xee" * HEAD  # no partition table yet
    assert before[HEAD : len(image)] == image[HEAD:]
    writer.commit_head()
    writer.close()
    assert disk.read_bytes()[: len(image)] == image[:]


def test_an_image_larger_than_the_disk_is_refused(tmp_path: Path) -> None:
    writer = DeviceWriter(str(_disk(tmp_path)), SIZE, 512)
    with pytest.raises(WriteFailed, match="the image does not fit") as caught:
        writer.write(memoryview(bytes(4096)), SIZE - 100)
    assert caught.value.hint == "choose a larger installation disk"
    writer.close()


def test_the_sector_size_is_checked_as_soon_as_the_head_holds_both_places(tmp_path: Path) -> None:
    writer = DeviceWriter(str(_disk(tmp_path)), SIZE, 4096)
    with pytest.raises(WriteFailed, match="laid out for 512-byte sectors"):
        writer.write(memoryview(_image())[:8192], 0)
    writer.close()


def test_erase_tail_removes_what_a_failed_write_left(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    writer = DeviceWriter(str(disk), SIZE, 512)
    writer.erase_tail(3 * HEAD)
    writer.close()
    data = disk.read_bytes()
    assert data[2 * HEAD : 3 * HEAD] == bytes(HEAD) and data[:2 * HEAD] == b"\xee" * 2 * HEAD


def test_a_missing_device_is_a_write_failure(tmp_path: Path) -> None:
    with pytest.raises(WriteFailed, match=r"cannot open .*missing for writing"):
        DeviceWriter(str(tmp_path / "missing"), SIZE, 512)
