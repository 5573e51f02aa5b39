"""reference_service.http.browser_guard: a state-changing request from another site's page is refused before
the application sees it, the JSON API takes JSON, and no answer may be framed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from reference_service.http.browser_guard import BrowserGuard, refusal


def _scope(method: str = "POST", path: str = "/api/assisted-install/v2/clusters", **headers: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "scheme": "http",
            "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in
                        {"host": "127.0.0.1:8090", **headers}.items()]}


@pytest.mark.parametrize("headers", [
    {},  # an API client: no Origin
    {"origin": "http://127.0.0.1:8090"},  # the service's own pages
    {"origin": "http://127.0.0.1:8090", "sec_fetch_site": "same-origin"},
    {"content_type": "application/json", "content_length": "2"},
    {"content_type": "application/merge-patch+json", "content_length": "2"},
    {"content_type": "multipart/form-data; boundary=x", "content_length": "20"},
    {"content_length": "2"},  # no Content-Type: read as JSON, as before
])
def test_what_is_let_through(headers: dict[str, str]) -> None:
    assert refusal(_scope(**headers)) is None


@pytest.mark.parametrize(("headers", "status", "reason"), [
    ({"origin": "http://127.0.0.1:9000"}, 403, "Origin 'http://127.0.0.1:9000' is not this service"),
    ({"origin": "https://127.0.0.1:8090"}, 403, "is not this service"),
    ({"origin": "null"}, 403, "is not this service"),
    ({"sec_fetch_site": "same-site"}, 403, "Sec-Fetch-Site: same-site"),
    ({"sec_fetch_site": "cross-site"}, 403, "Sec-Fetch-Site: cross-site"),
    ({"content_type": "text/plain", "content_length": "2"}, 415, "unsupported Content-Type 'text/plain'"),
    ({"content_type": "application/x-www-form-urlencoded", "content_length": "3"}, 415, "consumes application/json"),
])
def test_what_is_refused(headers: dict[str, str], status: int, reason: str) -> None:
    got = refusal(_scope(**headers))
    assert got is not None and got[0] == status and reason in got[1]


def test_reads_are_never_refused_and_default_ports_compare_equal() -> None:
    assert refusal(_scope("GET", origin="http://evil.example")) is None
    own = _scope(origin="http://svc.example")
    own["headers"] = [(b"host", b"svc.example:80"), (b"origin", b"http://svc.example")]
    assert refusal(own) is None


def _call(scope: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-security-policy", b"default-src 'self'")]})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(BrowserGuard(app)(scope, receive, send))
    return sent, reached


def test_the_middleware_refuses_before_the_app_and_denies_framing_everywhere() -> None:
    sent, reached = _call(_scope(origin="http://evil.example"))
    assert reached == [] and sent[0]["status"] == 403
    assert "is not this service" in json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["message"]
    assert (b"x-frame-options", b"DENY") in sent[0]["headers"]
    sent, reached = _call(_scope("GET", "/"))
    headers = dict(sent[0]["headers"])
    assert reached == ["/"] and sent[0]["status"] == 200
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-security-policy"] == b"default-src 'self'; frame-ancestors 'none'"
