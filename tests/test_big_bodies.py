"""Big request bodies are read a few at a time: the rest wait unread (in their sockets), so a burst of 330 KB
connectivity reports does not sit in the service's memory all at once."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from reference_service.http import routing
from reference_service.http.auth import Auth


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
    app.state.service = SimpleNamespace(settings=SimpleNamespace(auth="none"))

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
