"""The device writer: the body first, with O_DIRECT in large aligned blocks; the first MiB, its tables, last."""

from __future__ import annotations

import contextlib
import errno
import os

from common.errors import UnsafeTarget
from steps.base import StepContext
from steps.lib import disk_safety
from steps.write_image.checks import HEAD, check_sector_size
from steps.write_image.errors import WriteFailed


class DeviceWriter:
    """Writes the image: the body first with O_DIRECT in large aligned blocks, the first MiB last."""

    def __init__(self, path: str, size: int, block: int) -> None:
        self.path = path
        self.size = size
        self.block = block
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise UnsafeTarget(f"refusing to write to {path}: the device is busy (in use)") from exc
            raise WriteFailed(f"cannot open {path} for writing: {exc.strerror}") from exc
        try:
            self.direct_fd: int | None = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            self.direct_fd = None  # a device without O_DIRECT support still gets written, through the cache
        self.head = bytearray()
        self._sector_checked = False

    def close(self) -> None:
        for fd in (self.direct_fd, self.fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def wipe(self) -> None:
        """Zero the first and last MiB: old MBR/GPT, backup GPT and RAID superblocks at the end are gone."""
        zeros = bytes(min(HEAD, self.size))
        self._pwrite(self.fd, zeros, 0)
        self._pwrite(self.fd, zeros, max(0, self.size - len(zeros)))
        self.sync()

    def write(self, buf: memoryview, offset: int) -> None:
        if offset + len(buf) > self.size:
            raise WriteFailed(
                f"the image does not fit: it is larger than {self.path} ({self.size} bytes)",
                hint="choose a larger installation disk",
            )
        if offset < HEAD:
            keep = min(len(buf), HEAD - offset)
            self.head += buf[:keep]
            buf, offset = buf[keep:], offset + keep
            if len(self.head) >= 2 * 4096:
                self.check_sector_size()
        if not buf:
            return
        aligned = len(buf) - len(buf) % self.block
        if self.direct_fd is not None and aligned and offset % self.block == 0:
            self._pwrite(self.direct_fd, buf[:aligned], offset)
            buf, offset = buf[aligned:], offset + aligned
        if buf:
            self._pwrite(self.fd, buf, offset)

    def check_sector_size(self) -> None:
        """Once a write: as soon as the held-back head covers both places a GPT header can start."""
        if not self._sector_checked:
            self._sector_checked = True
            check_sector_size(self.head, self.block, self.path)

    def _pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.pwrite(fd, view, offset)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise WriteFailed(f"the disk {self.path} is full at offset {offset}") from exc
                raise WriteFailed(f"writing {self.path} at offset {offset} failed: {exc.strerror}") from exc
            if n == 0:
                raise WriteFailed(f"the disk {self.path} is full at offset {offset}")
            view, offset = view[n:], offset + n

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise WriteFailed(f"flushing {self.path} to the disk failed: {exc.strerror}") from exc

    def commit_head(self) -> None:
        """Write the partition tables: from now on the disk holds the new image."""
        self.check_sector_size()
        self._pwrite(self.fd, bytes(self.head), 0)
        self.sync()

    def erase_tail(self, end: int) -> None:
        """After a failed write: also remove the image's backup GPT, so no tool resurrects a partial table."""
        with contextlib.suppress(WriteFailed):
            start = max(HEAD, end - HEAD)
            if end > start:
                self._pwrite(self.fd, bytes(end - start), start)
                self.sync()



def format_disks(ctx: StepContext, disks: list[disk_safety.BlockDevice]) -> None:
    """Zero the first sector of each disk, as the installer's --format-disk does: with no MBR (and so no
    protective MBR for a GPT) firmware and bootloaders find no old operating system to boot there."""
    for dev in disks:
        try:
            fd = os.open(str(ctx.host.path(dev.path)), os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise UnsafeTarget(f"refusing to format {dev.path}: cannot open it exclusively ({exc.strerror})") from exc
        try:
            os.pwrite(fd, bytes(512), 0)
            os.fsync(fd)
        except OSError as exc:
            raise WriteFailed(f"formatting {dev.path} failed: {exc.strerror}") from exc
        finally:
            os.close(fd)
