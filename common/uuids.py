"""UUIDs as text, without importing :mod:`uuid` on the agent's way to its first register.

Why: ``import uuid`` loads :mod:`platform`, a few milliseconds of CPU at every start (issue 29 counts the CPU
before the first register). What the agent does with UUIDs there is check one and make one; both are plain
text operations, and anything but the canonical form is left to :class:`uuid.UUID` itself.
"""

from __future__ import annotations

import os
import re

_CANONICAL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(text: str) -> bool:
    """Whether ``uuid.UUID(text)`` would accept ``text`` (braces, ``urn:uuid:`` and undashed forms included)."""
    if _CANONICAL.fullmatch(text):
        return True
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def random_uuid() -> str:
    """``str(uuid.uuid4())``: a version 4, variant 1 UUID from os.urandom."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
