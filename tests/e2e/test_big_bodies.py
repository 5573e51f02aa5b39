"""Big request bodies are read a few at a time: the rest wait unread (in their sockets), so a burst of 330 KB
connectivity reports does not sit in the service's memory all at once."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from common.errors import ServiceRefusal
from reference_service.http import routing
from reference_service.http.auth import Auth
from tests.support.service import start_service


def _serve(sizes: list[int]) -> tuple[dict[str, int], list[int]]:
    inside = {"big": 0, "small": 0}
    peak = {"big": 0, "small": 0}
    statuses: list[int] = []

    async def endpoint(request: Request) -> Response:
        kind = "big" if len(await request.body()) >= routing.BIG_BODY else "small"
        inside[kind] += 1
        peak[kind] = max(peak[kind], inside[kind])
        await asyncio.sleep(0.02)
        inside[kind] -= 1
        return Response(status_code=204)

    app = Starlette(routes=[routing.route("/r", endpoint, methods=["POST"], auth=Auth.PUBLIC)])
    app.state.service = SimpleNamespace(settings=SimpleNamespace(auth="none", body_stall_seconds=30.0))

    async def call(size: int) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": b"x" * size, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {"type": "http", "method": "POST", "path": "/r", "query_string": b"", "app": app,
                 "headers": [(b"content-length", str(size).encode())]}
        await app(scope, receive, send)

    async def main() -> None:
        await asyncio.gather(*(call(size) for size in sizes))

    asyncio.run(main())
    return peak, statuses


def test_big_bodies_are_read_a_few_at_a_time_and_small_ones_are_not_held_back() -> None:
    peak, statuses = _serve([routing.BIG_BODY * 5] * 40 + [100] * 40)
    assert statuses == [204] * 80
    assert peak["big"] == routing.BIG_BODIES_AT_ONCE
    assert peak["small"] == 40


def _stalled_reply(address: tuple[str, int], path: str, declared: int, sent: bytes) -> socket.socket:
    conn = socket.create_connection(address, timeout=10)
    conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + sent)
    return conn


def _answer(conn: socket.socket) -> bytes:
    """Everything the service sends until it closes the connection."""
    got = b""
    while chunk := conn.recv(65536):
        got += chunk
    return got


def test_a_body_that_stalls_is_refused_and_frees_its_slot(tmp_path: Path) -> None:
    """Silent senders held the slots big bodies are read in for as long as they liked: with all of them taken,
    every host's connectivity report waited behind them."""
    with start_service(tmp_path, extra=["--body-stall-seconds", "1"]) as svc:
        url = urlsplit(svc.url)
        address = (url.hostname or "127.0.0.1", url.port or 80)
        path = f"/api/assisted-install/v2/infra-envs/{uuid.uuid4()}/hosts/{uuid.uuid4()}/instructions"
        stalled = [_stalled_reply(address, path, routing.BIG_BODY * 4, b"{" * 1000)
                   for _ in range(routing.BIG_BODIES_AT_ONCE)]
        body = json.dumps({"step_id": "s", "step_type": "inventory", "exit_code": 1, "output": "",
                           "error": "x" * routing.BIG_BODY}).encode()
        started = time.monotonic()
        late = _stalled_reply(address, path, len(body), body)
        answers = [_answer(conn) for conn in stalled]
        for answer in answers:
            head, _, reason = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
            assert json.loads(reason)["reason"] == "request body stalled: nothing for 1 s after 1000 bytes"
        assert _answer(late).startswith(b"HTTP/1.1 404 ")  # read, checked and answered: no such host
        assert time.monotonic() - started < 8
        for conn in [*stalled, late]:
            conn.close()


def test_a_body_trickled_faster_than_each_check_is_still_refused_as_too_slow(monkeypatch: Any) -> None:
    """The rate was judged only when a wait for the next bytes timed out (after 1 s): a sender trickling a byte
    every 0.2 s never let one time out and held its big-body slot for as long as it liked (in CI, eight such
    senders kept another host's 100 KB reply waiting 20 s). It is judged as the bytes arrive too."""
    monkeypatch.setattr(routing, "MIN_RATE_GRACE", 0.5)
    async def endpoint(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(routes=[routing.route("/r", endpoint, methods=["POST"], auth=Auth.PUBLIC)])
    app.state.service = SimpleNamespace(settings=SimpleNamespace(auth="none", body_stall_seconds=30.0))

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return {"type": "http.request", "body": b" ", "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass  # the refusal comes out of this bare app; the service's own app turns it into the answer

    scope = {"type": "http", "method": "POST", "path": "/r", "query_string": b"", "app": app,
             "headers": [(b"transfer-encoding", b"chunked")]}

    async def main() -> None:
        await asyncio.wait_for(app(scope, receive, send), 20)  # without the check: never answered

    with pytest.raises(ServiceRefusal) as refused:
        asyncio.run(main())
    assert refused.value.status == 408 and refused.value.close
    assert refused.value.reason.startswith("request body too slow: under 8192 bytes/s after ")
