"""What a browser may not be made to do: change state from another site's page, or show a page in its frame.

Every state-changing request (POST, PUT, PATCH, DELETE) is checked, cookie or not (under ``--auth none``, the
default, any page could otherwise drive the API without one):

- a browser says where a request comes from: an ``Origin`` other than the service's own (scheme, host, port),
  ``Origin: null``, or ``Sec-Fetch-Site: cross-site/same-site`` is refused with 403. A page on another port
  of the same host is another origin, though "same site" for cookies (so SameSite=Strict did not stop it).
  API clients (the agent, aicli, curl, the generated client) send no Origin and are not affected, as with
  the real service, which checks no Origin at all;
- the JSON API takes JSON: a body under ``/api/`` whose Content-Type is not ``application/json`` (or
  ``multipart/form-data``, which the log uploads use) is refused with 415, as go-swagger refuses a type an
  operation does not consume; a body with no Content-Type is read as JSON, as before. A ``text/plain``
  form body (which a cross-site page can send without a preflight) is no longer parsed as JSON.

Every answer carries ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'``: no page of the service renders
inside another site's frame (the Install button could be clicked through one).
"""

from __future__ import annotations

from typing import Any

from reference_service.http.common import error

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_BODY_TYPES = ("application/json", "multipart/form-data")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    scheme, sep, rest = url.partition("://")
    if not sep or not rest or "/" in rest.rstrip("/"):
        return None
    return _host_port(scheme.lower(), rest.rstrip("/"))


def _host_port(scheme: str, authority: str) -> tuple[str, str, int] | None:
    host, port = authority.lower(), ""
    if host.startswith("["):
        end = host.find("]")
        host, port = host[: end + 1], host[end + 2:] if host[end + 1: end + 2] == ":" else ""
    elif ":" in host:
        host, port = host.rsplit(":", 1)
    if port and not port.isdigit():
        return None
    return scheme, host, int(port) if port else _DEFAULT_PORTS.get(scheme, 0)


def refusal(scope: Any) -> tuple[int, str] | None:
    """(status, reason) when the request must not reach the application, else None."""
    if scope["method"] not in UNSAFE_METHODS:
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return 403, f"cross-origin request refused (Sec-Fetch-Site: {site})"
    origin = headers.get("origin")
    if origin is not None:
        own = _host_port(scope.get("scheme", "http"), headers.get("host", ""))
        if own is None or _origin_of(origin.strip()) != own:
            return 403, f"cross-origin request refused: Origin {origin[:200]!r} is not this service"
    if scope["path"].startswith("/api/") and _has_body(headers):
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        # No Content-Type at all is let through as JSON: browsers label every body they send cross-site
        # without a preflight (text/plain, form types) except a type-less Blob, and that carries an Origin
        if ctype and not (ctype in API_BODY_TYPES or (ctype.startswith("application/") and ctype.endswith("+json"))):
            return 415, (f"unsupported Content-Type {ctype or '(none)'!r}: this API consumes application/json"
                         " (multipart/form-data for file uploads)")
    return None


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "").strip()
    return bool(headers.get("transfer-encoding")) or (length not in ("", "0"))


_FRAME_HEADERS = [(b"x-frame-options", b"DENY")]


def _deny_framing(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = [(k, v) for k, v in headers if k.lower() != b"x-frame-options"] + _FRAME_HEADERS
    for i, (k, v) in enumerate(out):
        if k.lower() == b"content-security-policy":
            if b"frame-ancestors" not in v:
                out[i] = (k, v + b"; frame-ancestors 'none'")
            return out
    return [*out, (b"content-security-policy", b"frame-ancestors 'none'")]


class BrowserGuard:
    """ASGI middleware: the checks above before the application, the framing headers on every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def framed(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _deny_framing(list(message.get("headers", [])))}
            await send(message)

        refused = refusal(scope)
        if refused is not None:
            await error(*refused)(scope, receive, framed)
            return
        await self.app(scope, receive, framed)
