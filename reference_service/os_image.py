"""The OS image the service hands to installing hosts: the file of the ``os_image`` setting (``--os-image``,
``$REFERENCE_SERVICE_OS_IMAGE``; raw, xz, gzip or zstd), its SHA-256 for the write-image request, computed once
per file version."""

from __future__ import annotations

import hashlib
from pathlib import Path

_digests: dict[tuple[str, int, int], str] = {}


def os_image(name: str) -> tuple[Path, str] | None:
    """The image ``name`` (the os_image setting) and its SHA-256 (computed once per file version), or None."""
    if not name:
        return None
    path = Path(name)
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(4 << 20):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return path, _digests[key]
