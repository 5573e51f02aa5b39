"""write-image's rules over the bytes: the GPT's sector size before the body, counts and checksums after."""

from __future__ import annotations

import pytest

from steps.lib.bootfs import GPT_SIGNATURE
from steps.write_image.checks import HEAD, check_sector_size, check_written
from steps.write_image.errors import WriteFailed
from steps.write_image.params import WriteImageParams


def _head(sector: int) -> bytes:
    head = bytearray(2 * 4096)
    head[sector : sector + 8] = GPT_SIGNATURE
    return bytes(head)


def test_an_image_for_the_disks_sector_size_passes() -> None:
    check_sector_size(_head(512), 512, "/dev/sda")
    check_sector_size(_head(4096), 4096, "/dev/sda")


def test_an_image_for_the_other_sector_size_is_refused_with_a_hint() -> None:
    with pytest.raises(WriteFailed, match="laid out for 512-byte sectors but /dev/sda has 4096-byte") as caught:
        check_sector_size(_head(512), 4096, "/dev/sda")
    assert caught.value.hint and "4K image" in caught.value.hint
    with pytest.raises(WriteFailed, match="laid out for 4096-byte sectors"):
        check_sector_size(_head(4096), 512, "/dev/sda")


def test_what_is_not_a_gpt_image_is_refused() -> None:
    with pytest.raises(WriteFailed, match="not a GPT disk image"):
        check_sector_size(bytes(2 * 4096), 512, "/dev/sda")


def _params(**kw: object) -> WriteImageParams:
    return WriteImageParams(image_url="file:///i", target_device="/dev/sda", **kw)  # type: ignore[arg-type]


def test_written_bytes_and_checksums_must_be_the_ones_asked_for() -> None:
    size = 3 * HEAD
    check_written(_params(image_size=size, image_sha256="a" * 64, raw_sha256="b" * 64), size, "a" * 64, "b" * 64)
    with pytest.raises(WriteFailed, match=f"the image is {size - 1} bytes, not {size}"):
        check_written(_params(image_size=size), size - 1, "", "")
    with pytest.raises(WriteFailed, match=r"^image checksum mismatch: expected a+, got c+$"):
        check_written(_params(image_sha256="a" * 64), size, "c" * 64, "")
    with pytest.raises(WriteFailed, match=r"^raw image checksum mismatch"):
        check_written(_params(raw_sha256="b" * 64), size, "", "c" * 64)
    with pytest.raises(WriteFailed, match="too small to be a disk image"):
        check_written(_params(image_sha256="a" * 64), 2 * HEAD - 1, "a" * 64, "")
