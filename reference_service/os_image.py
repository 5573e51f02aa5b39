"""The OS image the service hands to installing hosts: the file named by ``$REFERENCE_SERVICE_OS_IMAGE`` (raw,
xz, gzip or zstd), its SHA-256 for the write-image request, computed once per file version."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

OS_IMAGE_ENV = "REFERENCE_SERVICE_OS_IMAGE"
#: Bytes/s the image is served at when set, like a slow mirror (for demos and interrupting an install).
OS_IMAGE_RATE_ENV = "REFERENCE_SERVICE_OS_IMAGE_RATE"

_digests: dict[tuple[str, int, int], str] = {}


def os_image() -> tuple[Path, str] | None:
    """The configured image and its SHA-256 (computed once per file version), or None."""
    name = os.environ.get(OS_IMAGE_ENV)
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
