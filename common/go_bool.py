"""Booleans as the Go agent's flags and files spell them, so a value that works there works here."""

from __future__ import annotations


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, which is what --insecure=VALUE accepts."""
    lowered = text.strip().lower()
    if lowered in ("1", "t", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "n", "off", ""):
        return False
    raise ValueError(f"invalid boolean {text!r}")
