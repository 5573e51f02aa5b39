"""The rules the image's bytes must pass, as pure functions over them.

Before the body is written: the image's GPT is laid out for the disk's sector size. After the body is written,
and before the partition table is: the byte count and the checksums are the ones the service asked for.
"""

from __future__ import annotations

from steps.lib.bootfs import GPT_SIGNATURE
from steps.write_image.errors import WriteFailed
from steps.write_image.params import WriteImageParams

#: The region written last: protective MBR, primary GPT header and partition array all live here.
HEAD = 1 << 20


def check_sector_size(head: bytes | bytearray, block: int, device: str) -> None:
    """Refuse, before the body is written, an image whose GPT is laid out for another sector size: a
    512-byte image on a 4K-native disk (or the reverse) would not boot, as coreos-installer also checks."""
    found = [size for size in (512, 4096) if head[size : size + 8] == GPT_SIGNATURE]
    if not found:
        raise WriteFailed("the image is not a GPT disk image (no GPT header at sector 1)")
    if block not in found:
        raise WriteFailed(
            f"the image is laid out for {found[0]}-byte sectors but {device} has {block}-byte sectors",
            hint="use the image built for this disk's sector size (e.g. the 4K image for 4Kn disks)",
        )


def check_written(params: WriteImageParams, written: int, image_sha: str, raw_sha: str) -> None:
    if params.image_size is not None and written != params.image_size:
        raise WriteFailed(f"the image is {written} bytes, not {params.image_size} as requested")
    if params.image_sha256 and image_sha != params.image_sha256:
        raise WriteFailed(f"image checksum mismatch: expected {params.image_sha256}, got {image_sha}")
    if params.raw_sha256 and raw_sha != params.raw_sha256:
        raise WriteFailed(f"raw image checksum mismatch: expected {params.raw_sha256}, got {raw_sha}")
    if written < 2 * HEAD:
        raise WriteFailed(f"the image is only {written} bytes: too small to be a disk image")
