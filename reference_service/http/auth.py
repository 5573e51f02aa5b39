"""Who may call a route: agents with their infra-env's token, users with the admin token.

Agent-facing operations authenticate with the infra-env's token in ``X-Secret-Key``; user-facing ones with
``Authorization: Bearer <admin token>``; both are skipped in ``auth=none`` mode.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request

from reference_service.errors import ServiceRefusal
from reference_service.http.common import service_of


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
