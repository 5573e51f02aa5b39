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

The modules, in the order the bytes meet them: :mod:`.params` (the request), :mod:`.sources` (file or
HTTP), :mod:`.hashing` (``image_sha256`` over the bytes as served), :mod:`.decompress` (with
:mod:`.prefetch` and :mod:`.zstd_frames` for zstd), :mod:`.pipeline` (the buffer pool and its threads),
:mod:`.writer` (the device, the first MiB held back), :mod:`.checks` (the rules the bytes must pass),
:mod:`.placement` (Ignition and kernel arguments) and :mod:`.step` (the order of operations and progress).
"""

from __future__ import annotations

from steps.write_image.errors import Interrupted, WriteFailed
from steps.write_image.params import WriteImageParams
from steps.write_image.step import WriteImageStep

__all__ = ["Interrupted", "WriteFailed", "WriteImageParams", "WriteImageStep"]
