"""HTTP helpers shared by the service's route modules: authentication, bodies, spec checks, error shapes."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from reference_service import spec
from reference_service.lifecycle import ReferenceService, ServiceRefusal


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


def require_agent_auth(request: Request, infra_env_id: str) -> None:
    svc = service_of(request)
    if svc.settings.auth == "none":
        return
    given = request.headers.get("x-secret-key", "")
    expected = svc.store.infra_env_token(infra_env_id)
    if expected is None:
        raise ServiceRefusal(404, f"Failed to get infra env {infra_env_id}")
    if not given or not secrets.compare_digest(given, expected):
        raise ServiceRefusal(401, "Unauthorized: the agent token is missing or not valid for this infra-env")


def require_user_auth(request: Request) -> None:
    svc = service_of(request)
    if svc.settings.auth == "none":
        return
    header = request.headers.get("authorization", "")
    token = header.split(" ", 1)[1] if header.lower().startswith("bearer ") else ""
    if not token or not secrets.compare_digest(token, svc.settings.admin_token):
        raise ServiceRefusal(401, "Unauthorized: user authentication (Authorization: Bearer) required")


def agent_version_header(request: Request) -> str | None:
    return request.headers.get("discovery_agent_version") or None
