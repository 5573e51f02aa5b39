"""steps.lib.bounded: an HTTP body read with a bound on what it inflates to, from a real loopback server:
plain and gzip and deflate bodies read whole, a gzip bomb refused at the bound without being inflated, and
garbage or an encoding nobody asked for refused."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
import requests

from steps.lib.bounded import ACCEPT_ENCODING, BodyTooLarge, read_body
from tests.support.loopback_http import LoopbackHTTP, serving

LIMIT = 1 << 20


@pytest.fixture
def bodies() -> Iterator[LoopbackHTTP]:
    with serving() as srv:
        yield srv


def _get(bodies: LoopbackHTTP, path: str, encoding: str, body: bytes) -> requests.Response:
    bodies.answers[path] = (200, body, {"Content-Encoding": encoding} if encoding else {})
    return requests.get(bodies.url + path, stream=True, headers={"Accept-Encoding": ACCEPT_ENCODING}, timeout=10)


def test_plain_gzip_and_deflate_bodies_are_read_whole(bodies: LoopbackHTTP) -> None:
    text = b'{"ignition": {"version": "3.2.0"}}' * 1000
    assert read_body(_get(bodies, "/plain", "", text), LIMIT) == text
    assert read_body(_get(bodies, "/gzip", "gzip", gzip.compress(text)), LIMIT) == text
    assert read_body(_get(bodies, "/deflate", "deflate", zlib.compress(text)), LIMIT) == text
    assert read_body(_get(bodies, "/exact", "", b"x" * LIMIT), LIMIT) == b"x" * LIMIT


def test_a_gzip_bomb_is_refused_at_the_bound_without_inflating_it(bodies: LoopbackHTTP) -> None:
    bomb = gzip.compress(bytes(32 << 20), compresslevel=1)  # 32 MiB of zeros in about 140 KiB
    assert len(bomb) < LIMIT // 4
    resp = _get(bodies, "/bomb", "gzip", bomb)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decompressed"):
            read_body(resp, LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * LIMIT  # never more than about the bound held, not a chunk's 64 MiB inflated


def test_a_body_over_the_bound_on_the_wire_is_refused(bodies: LoopbackHTTP) -> None:
    with pytest.raises(BodyTooLarge, match=f"over the {LIMIT} bytes accepted$"):
        read_body(_get(bodies, "/big", "", b"x" * (LIMIT + 1)), LIMIT)


def test_garbage_and_unasked_encodings_are_refused(bodies: LoopbackHTTP) -> None:
    with pytest.raises(ValueError, match="does not decompress"):
        read_body(_get(bodies, "/garbage", "gzip", b"not gzip at all"), LIMIT)
    with pytest.raises(ValueError, match="unsupported Content-Encoding 'br'"):
        read_body(_get(bodies, "/br", "br", b"\x1b\x00"), LIMIT)
