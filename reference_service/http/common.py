"""What every route module uses: the service of a request, JSON bodies, spec checks, the spec's error shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from common import json_codec
from common.errors import ServiceRefusal
from reference_service import spec
from reference_service.orchestrator import ReferenceService
from rules.stored_text import text_of


def error(status: int, reason: str) -> JSONResponse:
    if status in (401, 403):
        return JSONResponse({"code": status, "message": reason}, status_code=status)
    return JSONResponse({"kind": "Error", "id": status, "href": "", "code": str(status), "reason": reason},
                        status_code=status)


class FastJSONResponse(JSONResponse):
    """The same compact JSON as Starlette's, encoded by orjson (``json_codec``): a poll's answer carries a
    150 KB connectivity-check argument at 1,000 hosts, which the json module escaped ten times slower."""

    def render(self, content: Any) -> bytes:
        return json_codec.dumps_bytes(content)


#: Items a listing encodes before it lets other requests run.
LIST_CHUNK = 50


def json_list(items: Iterable[dict[str, Any]], status_code: int = 200) -> StreamingResponse:
    """A JSON array sent one item at a time, each item made as it is sent (pass a generator): listing 1,000
    hosts with their connectivity reports (330 KB each, read back from the replies) as one document took 0.3 s
    of the loop and a few hundred MB while it was built, encoded and sent."""
    return StreamingResponse(_array(items), status_code=status_code, media_type="application/json")


def json_with_list(doc: dict[str, Any], key: str, items: Iterable[dict[str, Any]],
                   status_code: int = 200) -> StreamingResponse:
    """``doc`` with ``key`` set to a JSON array sent as ``json_list`` sends one (a cluster and its hosts)."""

    async def chunks() -> AsyncIterator[bytes]:
        head = json_codec.dumps_bytes({k: v for k, v in doc.items() if k != key})
        yield head[:-1] + (b"," if len(head) > 2 else b"") + json_codec.dumps_bytes(key) + b":"
        async for chunk in _array(items):
            yield chunk
        yield b"}"

    return StreamingResponse(chunks(), status_code=status_code, media_type="application/json")


async def _array(items: Iterable[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield b"["
    for i, item in enumerate(items):
        yield (b"," if i else b"") + json_codec.dumps_bytes(item)
        if i % LIST_CHUNK == LIST_CHUNK - 1:
            await asyncio.sleep(0)
    yield b"]"


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the API shows it: internal bookkeeping fields (``_x``) removed, handles to stored
    texts replaced by the texts."""
    return {k: text_of(v) for k, v in doc.items() if not k.startswith("_")}


def service_of(request: Request) -> ReferenceService:
    return request.app.state.service  # type: ignore[no-any-return]


#: Bodies of the user routes above this are parsed in a worker thread, so that other requests are served
#: meanwhile (step replies, which come in hundreds a second, are checked in a worker process instead:
#: ``reply_workers``).
PARSE_IN_THREAD = 256 << 10
#: Request bodies are JSON decoded by ``json_codec.decode_request`` (its historic name here).
decode_json = json_codec.decode_request


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    if len(raw) > PARSE_IN_THREAD:
        return await asyncio.to_thread(decode_json, raw)
    return decode_json(raw)


def check_model(definition: str, body: Any) -> None:
    problems = spec.errors(definition, body)
    if problems:
        raise ServiceRefusal(400, "; ".join(problems[:5]))


def agent_version_header(request: Request) -> str | None:
    return request.headers.get("discovery_agent_version") or None
