"""HTTP bodies read with a bound on what they become, not only on what comes over the wire.

requests decompresses ``Content-Encoding: gzip`` transparently and whole: a 1 MiB gzip answer of zeros became
1.6 GiB in the api-vip step. Here the body is read raw, in chunks, and inflated with zlib's ``max_length``, so
neither the compressed nor the decompressed bytes held ever exceed ``limit`` (plus one chunk). Only the
encodings asked for (gzip, deflate) are accepted; anything else is refused rather than passed on undecoded.
"""

from __future__ import annotations

import zlib
from typing import Any

#: What a step asks for (the Go client asks for gzip too); a server may still send anything.
ACCEPT_ENCODING = "gzip, deflate"
_CHUNK = 64 * 1024


class BodyTooLarge(ValueError):
    """The body (decompressed) is over the caller's limit: refused, nothing past the limit was held."""


def _decompressor(encoding: str) -> Any:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj()
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def read_body(resp: Any, limit: int) -> bytes:
    """The body of a ``stream=True`` requests response, decoded, at most ``limit`` bytes; BodyTooLarge past it.

    ValueError for a body that does not inflate. The response is closed in every case.
    """
    try:
        inflate = _decompressor(resp.headers.get("Content-Encoding", ""))
        out = bytearray()
        raw_total = 0
        for chunk in resp.raw.stream(_CHUNK, decode_content=False):
            raw_total += len(chunk)
            if raw_total > limit:
                raise BodyTooLarge(f"the answer is over the {limit} bytes accepted")
            if inflate is None:
                out += chunk
            else:
                data = chunk
                while data:
                    try:
                        out += inflate.decompress(data, limit + 1 - len(out))
                    except zlib.error as exc:
                        raise ValueError(f"the answer does not decompress: {exc}") from None
                    if len(out) > limit:
                        break
                    data = inflate.unconsumed_tail
            if len(out) > limit:
                raise BodyTooLarge(f"the answer is over the {limit} bytes accepted (decompressed)")
        return bytes(out)
    finally:
        resp.close()
