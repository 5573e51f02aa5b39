"""The OS image the service hands to installing hosts: the file of the ``os_image`` setting (``--os-image``,
``$REFERENCE_SERVICE_OS_IMAGE``; raw, xz, gzip or zstd), its SHA-256 for the write-image request, computed once
per file version. The digests are the service instance's (``ReferenceService.os_images``), not the module's:
two services in one process (the tests) do not share them."""

from __future__ import annotations

import hashlib
from pathlib import Path


class OsImages:
    """The images named by the setting and their digests, each computed once per file version (path, mtime,
    size): an image of a few GiB takes seconds to hash, and every write-image request names it."""

    def __init__(self) -> None:
        self._digests: dict[tuple[str, int, int], str] = {}

    def find(self, name: str) -> tuple[Path, str] | None:
        """The image ``name`` (the os_image setting) and its SHA-256, or None when unset or missing."""
        if not name:
            return None
        path = Path(name)
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_mtime_ns, st.st_size)
        digest = self._digests.get(key)
        if digest is None:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(4 << 20):
                    h.update(chunk)
            digest = self._digests[key] = h.hexdigest()
        return path, digest
