"""The pipeline that pumps the decompressed image into the device: read, hash and write, each in its thread."""

from __future__ import annotations

import hashlib
import mmap
import queue
import threading
from typing import Any

from steps.write_image.decompress import RawStream
from steps.write_image.writer import DeviceWriter

CHUNK = 4 << 20
POOL = 4


def stream_image(
    stream: RawStream,
    writer: DeviceWriter,
    *,
    on_progress: Any = None,
    abort: threading.Event | None = None,
    hash_raw: bool = True,
) -> tuple[int, str]:
    """Pump the decompressed image into the device; returns (bytes written, raw SHA-256 or "" if not hashed).

    Three stages, each a thread, handing a small pool of buffers along in order: read (or decompress), hash,
    write. SHA-256 is the slowest of them on a raw image, so it runs on its own core rather than after the read.
    """
    abort = abort or threading.Event()
    pool = [mmap.mmap(-1, CHUNK) for _ in range(POOL)]
    free: queue.Queue[mmap.mmap] = queue.Queue()
    for buf in pool:
        free.put(buf)
    full: queue.Queue[tuple[mmap.mmap, int] | BaseException | None] = queue.Queue()
    hashed = queue.Queue() if hash_raw else full
    raw_sha = hashlib.sha256()

    def produce() -> None:
        try:
            while not abort.is_set():
                buf = free.get()
                view = memoryview(buf)
                n = 0
                while n < CHUNK:
                    got = stream.readinto(view[n:])
                    if not got:
                        break
                    n += got
                view.release()
                if n:
                    full.put((buf, n))
                if n < CHUNK:
                    stream.finish()
                    full.put(None)
                    return
        except BaseException as exc:
            full.put(exc)

    def hash_in_order() -> None:
        while not abort.is_set():
            try:
                item = full.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(item, tuple):
                with memoryview(item[0]) as view:
                    raw_sha.update(view[: item[1]])
            hashed.put(item)
            if not isinstance(item, tuple):
                return

    stages = [threading.Thread(target=produce, name="image-producer", daemon=True)]
    if hash_raw:
        stages.append(threading.Thread(target=hash_in_order, name="image-hasher", daemon=True))
    for stage in stages:
        stage.start()
    offset = 0
    try:
        while True:
            try:
                item = hashed.get(timeout=1.0)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            view = memoryview(buf)
            try:
                writer.write(view[:n], offset)
            finally:
                view.release()
            offset += n
            free.put(buf)
            if on_progress is not None:
                on_progress(offset)
    except BaseException:
        abort.set()
        stream.abort()
        free.put(pool[0])  # unblock a producer waiting for a buffer
        raise
    for stage in stages:
        stage.join()
    return offset, raw_sha.hexdigest() if hash_raw else ""
