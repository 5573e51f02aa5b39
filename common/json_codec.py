"""JSON of the service's own documents (stored rows, decoded host fields, accepted step outputs): orjson, with
the standard library wherever orjson would refuse what it takes.

At 1,000 hosts the service decodes and encodes about 10 MB of JSON a second (inventories, 300 KB connectivity
reports, host rows with them): orjson decodes a report in half the time and encodes a host row in a tenth
(figures in docs/scale.md). Request bodies (``decode_request``) are decoded by orjson too when nothing in them
could make the two decoders disagree, and otherwise by the standard library, whose refusals name the problem.
"""

from __future__ import annotations

import json
from typing import Any

from common.errors import ServiceRefusal

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


def dumps_bytes(doc: Any) -> bytes:
    """``dumps`` as UTF-8, without a detour through str (a listing of big hosts is megabytes)."""
    if orjson is not None:
        try:
            return orjson.dumps(doc)
        except TypeError:
            pass
    return json.dumps(doc, separators=(",", ":")).encode()


def dumps(doc: Any) -> str:
    """Compact JSON text; documents orjson cannot encode (integers beyond 64 bits, keys that are not
    strings) are encoded by the standard library."""
    if orjson is not None:
        try:
            return orjson.dumps(doc).decode()
        except TypeError:
            pass
    return json.dumps(doc, separators=(",", ":"))


INT64 = (-(2**63), 2**63 - 1)
#: orjson accepts 1,024 levels of nesting, the standard library refuses from about 1,000 (Python's recursion
#: limit): a document orjson decoded is kept only when it is no deeper than this.
MAX_DEPTH = 500


def _int64(text: str) -> int:
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"integer {text[:40]} is outside the 64-bit range of the spec's integers")
    return value


def _as_stdlib_decodes(doc: Any, limit: int) -> bool:
    """Whether the standard library would decode the same document: nested at most ``limit`` levels, every
    integer within int64, and no float at all, since orjson turns an integer literal beyond 64 bits into a
    float without a word (a step reply, a few strings and an int, costs nothing to walk)."""
    stack = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            if isinstance(value, float) or (isinstance(value, int) and not INT64[0] <= value <= INT64[1]):
                return False
            continue
        if depth >= limit:
            return False
        stack.extend((v, depth + 1) for v in children if not isinstance(v, str))
    return True


def decode_request(raw: bytes) -> Any:
    """A request body as JSON, or ServiceRefusal(400): not JSON, nested too deep, an integer no 64-bit field
    holds, or a string that is not Unicode text (a lone surrogate cannot be stored or sent back).

    orjson decides alone when what it decoded is what the standard library would have (``_as_stdlib_decodes``):
    it refuses lone surrogates and invalid UTF-8 itself (a 330 KB connectivity reply: 0.2 ms against 1.3 ms).
    Everything else, and every refusal, goes to the standard library."""
    if orjson is not None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if _as_stdlib_decodes(doc, MAX_DEPTH):
                return doc
    try:
        doc = json.loads(raw, parse_int=_int64)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ServiceRefusal(400, "request body is nested too deeply") from None
    except UnicodeEncodeError:
        raise ServiceRefusal(400, "request body holds a string that is not valid Unicode (a lone surrogate)") from None
    except ValueError as exc:
        raise ServiceRefusal(400, f"request body is not valid JSON: {str(exc)[:200]}") from None
    return doc
