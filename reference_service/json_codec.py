"""JSON of the service's own documents (stored rows, decoded host fields, accepted step outputs): orjson, with
the standard library wherever orjson would refuse what it takes.

At 1,000 hosts the service decodes and encodes about 10 MB of JSON a second (inventories, 300 KB connectivity
reports, host rows with them): orjson decodes a report in half the time and encodes a host row in a tenth,
and the writer thread that encodes rows holds the GIL that much less (figures in docs/scale.md). Request
bodies keep the standard library's decoder (``http.common.decode_json``), whose refusals name the problem.
"""

from __future__ import annotations

import json
from typing import Any

try:  # an accelerator: the agent's image, which reads the rules for `agent check`, goes without it
    import orjson
except ImportError:  # pragma: no cover - the service's extra installs it
    orjson = None  # type: ignore[assignment]


def loads(text: str | bytes) -> Any:
    """``json.loads``' result; what orjson refuses (NaN, Infinity, a lone surrogate escape) is decoded by
    the standard library, which also raises its own errors for what is not JSON at all."""
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def dumps(doc: Any) -> str:
    """Compact JSON text; documents orjson cannot encode (integers beyond 64 bits, keys that are not
    strings) are encoded by the standard library."""
    if orjson is not None:
        try:
            return orjson.dumps(doc).decode()
        except TypeError:
            pass
    return json.dumps(doc, separators=(",", ":"))
