"""What every route module uses: the service of a request, JSON bodies, spec checks, the spec's error shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from reference_service import json_codec, spec
from reference_service.errors import ServiceRefusal
from reference_service.orchestrator import ReferenceService


def error(status: int, reason: str) -> JSONResponse:
    if status in (401, 403):
        return JSONResponse({"code": status, "message": reason}, status_code=status)
    return JSONResponse({"kind": "Error", "id": status, "href": "", "code": str(status), "reason": reason},
                        status_code=status)


class FastJSONResponse(JSONResponse):
    """The same compact JSON as Starlette's, encoded by orjson (``json_codec``): a poll's answer carries a
    150 KB connectivity-check argument at 1,000 hosts, which the json module escaped ten times slower."""

    def render(self, content: Any) -> bytes:
        return json_codec.dumps(content).encode()


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the API shows it: internal bookkeeping fields (``_x``) removed."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def service_of(request: Request) -> ReferenceService:
    return request.app.state.service  # type: ignore[no-any-return]


#: Bodies above this are parsed (and a step reply's output parsed and checked against its model) in a worker
#: thread, so that other requests are served meanwhile: below it the work takes about a millisecond, less than
#: a thread hand-off costs; a 30 MB reply's checks take seconds of pure Python, which would stall the loop.
PARSE_IN_THREAD = 256 << 10
INT64 = (-(2**63), 2**63 - 1)


def _int64(text: str) -> int:
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"integer {text[:40]} is outside the 64-bit range of the spec's integers")
    return value


def decode_json(raw: bytes) -> Any:
    """A request body as JSON, or ServiceRefusal(400): not JSON, nested too deep, an integer no 64-bit field
    holds, or a string that is not Unicode text (a lone surrogate cannot be stored or sent back)."""
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
