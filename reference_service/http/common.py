"""What every route module uses: the service of a request, JSON bodies, spec checks, the spec's error shapes."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from reference_service import spec
from reference_service.errors import ServiceRefusal
from reference_service.orchestrator import ReferenceService


def error(status: int, reason: str) -> JSONResponse:
    if status in (401, 403):
        return JSONResponse({"code": status, "message": reason}, status_code=status)
    return JSONResponse({"kind": "Error", "id": status, "href": "", "code": str(status), "reason": reason},
                        status_code=status)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the API shows it: internal bookkeeping fields (``_x``) removed."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def service_of(request: Request) -> ReferenceService:
    return request.app.state.service  # type: ignore[no-any-return]


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ServiceRefusal(400, f"request body is not valid JSON: {exc}") from exc


def check_model(definition: str, body: Any) -> None:
    problems = spec.errors(definition, body)
    if problems:
        raise ServiceRefusal(400, "; ".join(problems[:5]))


def agent_version_header(request: Request) -> str | None:
    return request.headers.get("discovery_agent_version") or None
