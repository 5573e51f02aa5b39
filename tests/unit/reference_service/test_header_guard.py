"""reference_service.header_guard: request heads bounded before any route, on uvicorn itself (a server in a
thread of this process on loopback): too big or too many headers are 431, a head that does not come in time
408, and a normal request is served."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from reference_service.header_guard import HeaderLimits, guarded_protocol


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served() -> Iterator[tuple[int, HeaderLimits]]:
    limits = HeaderLimits(max_bytes=4096, max_count=10, timeout=0.5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=guarded_protocol(limits), lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield sock.getsockname()[1], limits
    server.should_exit = True
    thread.join(10)
    sock.close()


def _exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for part in parts:
            conn.sendall(part)
            time.sleep(pause)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and (data.endswith(b"ok") or b"connection: close" in data.lower()):
                break
        return data


def test_a_normal_request_is_served(served: tuple[int, HeaderLimits]) -> None:
    port, limits = served
    assert _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert limits.refused == {408: 0, 431: 0}


def test_a_head_over_its_size_is_431(served: tuple[int, HeaderLimits]) -> None:
    port, limits = served
    answer = _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert limits.refused[431] == 1


def test_too_many_headers_is_431(served: tuple[int, HeaderLimits]) -> None:
    port, _ = served
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(20)) + b"\r\n"
    assert _exchange(port, head).startswith(b"HTTP/1.1 431")


def test_a_head_that_does_not_come_in_time_is_408(served: tuple[int, HeaderLimits]) -> None:
    port, limits = served
    started = time.monotonic()
    answer = _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout") and time.monotonic() - started < 5
    assert limits.refused[408] == 1 and not limits.pending
