"""Every route declares who may call it (``auth.Auth``) and how big a body it takes; ``route()`` enforces both
before the handler runs, so no handler can forget either (``create_app`` refuses a route not made here).

Bodies are read while they stream and refused with 413 past the route's limit, before anything parses them;
ids in the path are taken in the canonical UUID form, so ``urn:uuid:...`` and ``{...}`` spellings name the
same host.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.errors import ServiceRefusal
from reference_service.http.auth import Auth, authorize
from reference_service.http.common import service_of
from reference_service.orchestrator import ReferenceService

#: Default body limit: the largest user or agent request (an install config, a step reply) is far below it.
DEFAULT_MAX_BODY = 4 << 20
#: Above ``--inventory-max-size``, a step reply carries the reply's own fields, and its output is a JSON string
#: inside JSON, whose escaping can double the size of the inventory document.
REPLY_SLACK = 1 << 20
#: A step reply when no ``--inventory-max-size`` is set: the agent's own cap on an output (common.limits), doubled
#: for the escaping, plus slack.
DEFAULT_MAX_REPLY = 2 * (8 << 20) + REPLY_SLACK

#: Requests whose body is at least this big (or of unknown size) are read and handled a few at a time
#: (``BIG_BODIES_AT_ONCE``); the others wait with their bodies unread, which the server's flow control
#: leaves in the socket. At 1,000 hosts the connectivity admission lets 150 reports of 330 KB through at
#: once, and reading them all while the reply worker checked the first took the service's RSS up by 100 MB.
BIG_BODY = 64 << 10
BIG_BODIES_AT_ONCE = 8
#: A big body must come at least this fast (bytes per second, averaged from its first byte) once
#: ``MIN_RATE_GRACE`` seconds have passed, or it is refused with 408: eight agents trickling a byte a second
#: held all eight slots, and another host's 100 KB reply waited 79 s. A 330 KB report comes in milliseconds.
BIG_BODY_MIN_RATE = 8 << 10
MIN_RATE_GRACE = 5.0

Endpoint = Callable[[Request], Awaitable[Response]]


async def read_bounded(request: Request, limit: int, stall: float, min_rate: float = 0.0) -> None:
    """Read the body while it streams, refusing it with 413 as soon as it passes ``limit``, and with 408 when
    ``stall`` seconds pass without a byte or, with ``min_rate``, when it comes slower than that (bytes per
    second, after ``MIN_RATE_GRACE``); the handler then reads it from memory (``request.body()``)."""
    headers = request.headers
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ServiceRefusal(413, f"request body of {declared} bytes exceeds this route's limit of {limit} bytes")
    if declared == "0" or (not declared and "transfer-encoding" not in headers):
        request._body = b""  # HTTP/1.1: a request with neither header has no body (every poll)
        return
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    if not min_rate:
        await _read_chunks(stream, chunks, limit, stall)
        request._body = b"".join(chunks)
        return
    loop = asyncio.get_running_loop()
    started = last = loop.time()
    while True:
        # the pending read is kept across checks (cancelling it would end the request's stream). The end comes as
        # None, not as StopAsyncIteration out of ``pending.result()``: that exception, kept by the future this frame
        # holds, would hold this frame in its traceback, a cycle that kept each big body (and its request) alive
        # until a full collection: 150 reports of 290 KB, 70 MiB of the service at 1,000 hosts (docs/scale.md)
        pending = asyncio.ensure_future(anext(stream, None))
        while not pending.done():
            await asyncio.wait({pending}, timeout=min(stall, 1.0))
            if pending.done():
                break
            now = loop.time()
            if now - last >= stall or _too_slow(size, now - started, min_rate):
                pending.cancel()
                _refuse_slow(size, stall, min_rate, stalled=now - last >= stall)
        chunk = pending.result()
        if chunk is None:
            break
        last = loop.time()
        size += len(chunk)
        if size > limit:
            raise ServiceRefusal(413, f"request body exceeds this route's limit of {limit} bytes", close=True)
        # also judged as bytes arrive: a sender trickling a byte just inside each wait never lets one time out
        if _too_slow(size, last - started, min_rate):
            _refuse_slow(size, stall, min_rate, stalled=False)
        chunks.append(chunk)
    request._body = b"".join(chunks)


async def _read_chunks(stream: AsyncIterator[bytes], chunks: list[bytes], limit: int, stall: float) -> None:
    """``read_bounded`` without a minimum rate: one timeout per chunk. The task and ``asyncio.wait`` per chunk
    that judging a rate needs were a tenth of a poll's CPU in bench/scale.py's saturation (``docs/scale.md``)."""
    size = 0
    while True:
        try:
            async with asyncio.timeout(stall):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            _refuse_slow(size, stall, 0.0, stalled=True)
        size += len(chunk)
        if size > limit:
            raise ServiceRefusal(413, f"request body exceeds this route's limit of {limit} bytes", close=True)
        chunks.append(chunk)


def _too_slow(size: int, elapsed: float, min_rate: float) -> bool:
    return bool(min_rate) and elapsed > MIN_RATE_GRACE and size / elapsed < min_rate


def _refuse_slow(size: int, stall: float, min_rate: float, *, stalled: bool) -> NoReturn:
    why = f"stalled: nothing for {stall:g} s" if stalled else f"too slow: under {min_rate:g} bytes/s"
    raise ServiceRefusal(408, f"request body {why} after {size} bytes", close=True)


def canonical_ids(request: Request) -> None:
    """Ids in the canonical form; ``check_ids`` then refuses one that is no UUID at all with 400, as the real
    service's parameter validation does after authentication (a 404 would say "no such cluster" about a
    typo)."""
    params = request.scope.get("path_params", {})
    for key in ("infra_env_id", "host_id", "cluster_id"):
        if key in params:
            params[key] = canonical_uuid(params[key])


def check_ids(request: Request) -> None:
    params = request.scope.get("path_params", {})
    for key in ("infra_env_id", "host_id", "cluster_id"):
        if key in params:
            try:
                uuid.UUID(str(params[key]))
            except ValueError:
                raise ServiceRefusal(400, f"{key} in path must be of type uuid: \"{params[key]}\"") from None


def canonical_uuid(text: Any) -> Any:
    """``text`` in the canonical lower-case UUID form when it is a UUID in any spelling, else unchanged."""
    if not isinstance(text, str):
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def route(path: str, endpoint: Endpoint, *, methods: list[str], auth: Auth,
          max_body: int | Callable[[ReferenceService], int] = DEFAULT_MAX_BODY) -> Route:
    async def guarded(request: Request) -> Response:
        canonical_ids(request)
        authorize(request, auth)
        check_ids(request)
        svc = service_of(request)
        limit = max_body(svc) if callable(max_body) else max_body
        stall = svc.settings.body_stall_seconds
        if not _big(request):
            await read_bounded(request, limit, stall)
            return await endpoint(request)
        async with _big_body_slots(request):
            await read_bounded(request, limit, stall, BIG_BODY_MIN_RATE)
            return await endpoint(request)

    declared = Route(path, guarded, methods=methods, name=f"{endpoint.__name__}:{','.join(methods)}")
    declared.auth = auth  # type: ignore[attr-defined]
    return declared


def _big_body_slots(request: Request) -> asyncio.Semaphore:
    """The app's slots for big bodies on the running loop: the app's (``app.state``), not this module's, so two
    apps served in one process (tests, a lab) do not take each other's."""
    state = request.app.state
    slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = getattr(
        state, "big_bodies", None)
    if slots is None:
        slots = state.big_bodies = weakref.WeakKeyDictionary()
    return slots.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(BIG_BODIES_AT_ONCE))


def _big(request: Request) -> bool:
    if request.method not in ("POST", "PUT", "PATCH"):
        return False
    declared = request.headers.get("content-length", "")
    return not declared.isdigit() or int(declared) >= BIG_BODY


def reply_limit(svc: ReferenceService) -> int:
    size = svc.settings.inventory_max_size
    return max(DEFAULT_MAX_BODY, 2 * size + REPLY_SLACK) if size > 0 else DEFAULT_MAX_REPLY
