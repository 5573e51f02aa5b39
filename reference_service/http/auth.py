"""Who may call a route, declared with the route (``routing.route(..., auth=Auth.X)``) and decided here once.

- ``PUBLIC``: anyone (``/healthz``; the OS image, which an agent fetches like a mirror).
- ``AGENT``: the agent token (``X-Secret-Key``) of the infra-env named by the path (``{infra_env_id}``), else
  by the query (``?infra_env_id=``), else of any infra-env bound to the path's ``{cluster_id}`` (the installer's
  controller uploads its logs with the token of the discovery image it came from).
- ``ADMIN``: an admin credential. ``ADMIN_CREDENTIALS`` lists where one may come from: the
  ``Authorization`` header (``Bearer <token>`` or the bare token, as the real local auth); a page served
  with a login cookie appends its cookie reader, and its routes declare ``Auth.ADMIN`` like any other; a
  pre-signed URL's ``api_key`` (the spec's ``urlAuth``) stands for it on the one GET it was signed for.
- ``AGENT_OR_ADMIN``: either.

Under ``--auth none`` every route is open (local use). Tokens are compared in constant time, as hashes for the
agent tokens (the store keeps nothing else of them).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from starlette.requests import Request

from common.errors import ServiceRefusal
from reference_service.http.common import service_of
from reference_service.orchestrator import ReferenceService
from reference_service.store.database import token_hash


class Auth(enum.Enum):
    PUBLIC = "public"
    AGENT = "agent"
    ADMIN = "admin"
    AGENT_OR_ADMIN = "agent-or-admin"


def bearer(request: Request) -> str:
    """The token of the ``Authorization`` header, with or without the ``Bearer `` prefix: the real service's
    local auth takes both, and aicli (``AI_TOKEN``) sends it bare."""
    header = request.headers.get("authorization", "").strip()
    if header.lower().startswith("bearer "):
        return header.split(" ", 1)[1].strip()
    return header if header and " " not in header else ""


#: The pages' session cookie (``http.console``: signing in with the admin token sets it; HttpOnly,
#: SameSite=Strict). Its value is an HMAC of the admin token, so the token itself never sits in a browser's
#: cookie jar, and a new admin token ends every session.
SESSION_COOKIE = "assisted_console"


def session_value(admin_token: str) -> str:
    return hmac.new(admin_token.encode(), b"assisted-console-session", hashlib.sha256).hexdigest()


def session_cookie(request: Request) -> str:
    """The admin credential a valid session cookie stands for, so a browser can call the API too."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    admin_token: str = service_of(request).settings.admin_token
    if cookie and secrets.compare_digest(cookie.encode(), session_value(admin_token).encode()):
        return admin_token
    return ""


def url_signature(admin_token: str, path: str, query: list[tuple[str, str]], expires: int) -> str:
    """The ``api_key`` of a pre-signed URL: its path and query (but ``api_key``) and its expiry, signed with
    the admin token, so it opens that one download until it expires and nothing else."""
    items = "&".join(f"{k}={v}" for k, v in sorted(query) if k != "api_key")
    mac = hmac.new(admin_token.encode(), f"GET {path}?{items} {expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def signed_url(request: Request) -> str:
    """The admin credential a valid, unexpired pre-signed URL stands for (only for a GET of that URL)."""
    given = request.query_params.get("api_key", "")
    expires = given.partition(".")[0]
    if request.method != "GET" or not expires.isdigit() or int(expires) < time.time():
        return ""
    admin_token: str = service_of(request).settings.admin_token
    expected = url_signature(admin_token, request.url.path, list(request.query_params.multi_items()), int(expires))
    return admin_token if secrets.compare_digest(given.encode(), expected.encode()) else ""


#: Where an admin credential may come from; each returns the credential or "".
ADMIN_CREDENTIALS: list[Callable[[Request], str]] = [bearer, session_cookie, signed_url]


def is_admin(request: Request, svc: ReferenceService) -> bool:
    expected = svc.settings.admin_token.encode()
    return any(secrets.compare_digest(c.encode(), expected) for f in ADMIN_CREDENTIALS if (c := f(request)))


def is_agent(request: Request, svc: ReferenceService) -> bool:
    given = request.headers.get("x-secret-key", "")
    if not given:
        return False
    ie = request.path_params.get("infra_env_id") or request.query_params.get("infra_env_id")
    cluster = request.path_params.get("cluster_id")
    if ie:
        candidates = [ie]
        if cluster is not None and "infra_env_id" not in request.path_params:
            # ?infra_env_id= names whose token it is, not what it may touch: only an infra-env bound to the
            # path's cluster speaks for it (infra-env two's token wrote cluster one's controller logs)
            bound = svc.store.get_infra_env(ie)
            if bound is None or bound.get("cluster_id") != cluster:
                return False
    elif cluster is not None:
        candidates = [e["id"] for e in svc.store.list_infra_envs() if e.get("cluster_id") == cluster]
    else:
        candidates = []
    digest = token_hash(given).encode()
    return any(secrets.compare_digest(digest, (svc.store.infra_env_token_hash(c) or "").encode())
               for c in candidates)


def authorize(request: Request, auth: Auth) -> None:
    svc = service_of(request)
    if auth is Auth.PUBLIC or svc.settings.auth == "none":
        return
    if auth in (Auth.ADMIN, Auth.AGENT_OR_ADMIN) and is_admin(request, svc):
        return
    if auth in (Auth.AGENT, Auth.AGENT_OR_ADMIN) and is_agent(request, svc):
        return
    if auth is Auth.ADMIN:
        raise ServiceRefusal(401, "Unauthorized: user authentication (Authorization: Bearer) required")
    ie = request.path_params.get("infra_env_id")
    if ie and svc.store.infra_env_token_hash(ie) is None:
        raise ServiceRefusal(404, f"Failed to get infra env {ie}")
    raise ServiceRefusal(401, "Unauthorized: the agent token is missing or not valid for this infra-env")
