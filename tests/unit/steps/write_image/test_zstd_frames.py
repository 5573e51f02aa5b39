"""The zstd frame tracker (steps/write_image/zstd_frames.py), which tells a stream cut inside a frame from a
complete one where libzstd's streaming reader cannot. Pure: no disk, no root."""

from __future__ import annotations

import itertools

from steps.write_image.zstd_frames import ZstdFrames


def test_zstd_frame_tracking_knows_every_frame_boundary() -> None:
    """At every cut of a stream of frames of each kind (checksum or not, content size or not, single segment,
    skippable), the tracker says complete exactly at the frame boundaries, whatever the chunking."""
    import zstandard

    payload = bytes(range(256)) * 700 + bytes(300_000)  # raw-ish, compressed and RLE blocks
    frames = [
        zstandard.ZstdCompressor(level=3, write_checksum=True).compress(payload),
        (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc",
        zstandard.ZstdCompressor(level=1, write_content_size=False).compress(payload[:1000]),
        zstandard.ZstdCompressor(level=1).compress(b""),
    ]
    stream = b"".join(frames)
    boundaries = set(itertools.accumulate(len(f) for f in frames))
    for chunk in (1, 7, 4096):  # chunks of 1: every cut of the stream is checked
        tracker = ZstdFrames()
        assert not tracker.complete
        for start in range(0, len(stream), chunk):
            end = min(len(stream), start + chunk)
            tracker.feed(stream[start:end])
            assert tracker.complete == (end in boundaries), (end, chunk)
