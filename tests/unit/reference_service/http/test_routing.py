"""reference_service.http.routing.read_bounded: what it reads of a request's body, and when it refuses it."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from starlette.requests import Request

from common.errors import ServiceRefusal
from reference_service.http.routing import read_bounded


def _request(method: str, headers: dict[str, str], messages: list[dict[str, Any]] | None = None) -> Request:
    """A request whose body is ``messages`` (None: reading it at all fails the test); then it waits for ever."""
    queue = list(messages or [])

    async def receive() -> dict[str, Any]:
        if messages is None:
            raise AssertionError("the body of a request that has none was read")
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()  # a client that stopped sending
        raise AssertionError("unreachable")

    scope = {"type": "http", "method": method, "path": "/", "query_string": b"",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    return Request(scope, receive)


def test_a_request_without_a_body_is_not_read() -> None:
    """A poll (GET, neither content-length nor transfer-encoding) has no body: nothing is awaited for it (each
    read of its empty stream cost a task and a wait, a tenth of a poll's CPU in bench/scale.py's saturation)."""
    for headers in ({}, {"content-length": "0"}):
        request = _request("GET", headers)
        asyncio.run(read_bounded(request, 100, 1.0))
        assert request._body == b""


def test_a_body_is_read_in_chunks_and_kept() -> None:
    request = _request("POST", {"transfer-encoding": "chunked"},
                       [{"type": "http.request", "body": b"ab", "more_body": True},
                        {"type": "http.request", "body": b"cd", "more_body": False}])
    asyncio.run(read_bounded(request, 100, 1.0))
    assert request._body == b"abcd"


@pytest.mark.parametrize("min_rate", [0.0, 1.0])
def test_a_read_request_is_freed_when_dropped_not_left_to_the_collector(min_rate: float) -> None:
    """Reading leaves no reference cycle behind: with the rate judged, the end of the stream came as an exception
    kept by a future that the reading frame held, a cycle through the frame (which holds the request, its body and
    its chunks) that only a full collection frees. At 1,000 hosts the wave's 150 reports of 290 KB stayed, twice
    each, and the service's RSS grew by 70 MiB (docs/scale.md)."""
    request = _request("POST", {"content-length": "4"},
                       [{"type": "http.request", "body": b"ab", "more_body": True},
                        {"type": "http.request", "body": b"cd", "more_body": False}])
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # (only reference counting frees it now, as between the service's rare full collections)
    try:
        asyncio.run(read_bounded(request, 100, 1.0, min_rate))
        assert request._body == b"abcd"
        freed = weakref.ref(request)
        del request
        assert freed() is None, "the request (and its body) outlived its last reference"
    finally:
        if was_enabled:
            gc.enable()


def test_a_body_over_the_limit_is_refused_as_it_streams() -> None:
    request = _request("POST", {"transfer-encoding": "chunked"},
                       [{"type": "http.request", "body": b"x" * 60, "more_body": True},
                        {"type": "http.request", "body": b"x" * 60, "more_body": True}])
    with pytest.raises(ServiceRefusal) as refused:
        asyncio.run(read_bounded(request, 100, 1.0))
    assert refused.value.status == 413


@pytest.mark.parametrize("min_rate", [0.0, 1.0])
def test_a_body_that_stalls_is_refused(min_rate: float) -> None:
    request = _request("POST", {"content-length": "10"}, [{"type": "http.request", "body": b"x", "more_body": True}])
    with pytest.raises(ServiceRefusal) as refused:
        asyncio.run(read_bounded(request, 100, 0.05, min_rate))
    assert refused.value.status == 408
    assert "stalled: nothing for 0.05 s after 1 bytes" in refused.value.reason
