"""The Starlette application: every route module's routes, fault injection and the test-mode request journal,
and ServiceRefusal turned into the spec's error bodies.

Routes are in ``agent_routes`` (the agent-facing API), ``user_routes`` (the user-facing API) and
``reference_routes`` (paths outside the spec, under ``/api/reference``, so nothing non-standard hides among
the real API); ``auth`` says who may call them; ``console`` and ``docs`` are the pages people use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import ServiceRefusal
from reference_service.http import (
    agent_routes,
    cluster_actions,
    console,
    console_forms,
    docs,
    downloads,
    host_actions,
    iso_routes,
    reference_routes,
    session_routes,
    unimplemented,
    user_routes,
)
from reference_service.http.auth import Auth
from reference_service.http.browser_guard import BrowserGuard
from reference_service.http.common import error
from reference_service.orchestrator import BASE, ReferenceService
from reference_service.store.writer import StoreUnavailable

#: What the test-mode journal never stores (headers are lower-case in ASGI); values become REDACTED.
SECRET_HEADERS = {"x-secret-key", "authorization", "cookie"}
SECRET_FIELDS = {"pull_secret"}
#: The journal keeps this much of a body: every body an agent sends in a test is smaller, and a refused huge
#: body must not be held twice.
JOURNAL_MAX_BODY = 4 << 20
REDACTED = "***"


def _redact_body(text: str) -> str:
    """A journaled body with every ``pull_secret`` value replaced, at any depth (non-JSON bodies are kept)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return text

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if k in SECRET_FIELDS else scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return json.dumps(scrub(doc)) if "pull_secret" in text else text


class _Middleware:
    """Fault injection, the test-mode request journal, and ServiceRefusal -> the spec's error bodies."""

    def __init__(self, app: Any, service: ReferenceService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault["delay"]:
                await asyncio.sleep(fault["delay"])
            if fault.get("body") is not None:  # a scripted answer (a register answer the real service never gives)
                answer: Response = JSONResponse(fault["body"], status_code=fault["status"])
            else:
                answer = error(fault["status"], f"injected fault {fault['status']}")
            await answer(scope, receive, send)
            self._journal(scope, b"", fault["status"])
            return
        body_chunks: list[bytes] = []
        status_box = [0]
        refused = [False]
        store = self.service.store
        writes_before = store.submitted
        journaled = self.service.settings.test_mode  # (only the journal keeps bodies)

        async def recv() -> Any:
            message = await receive()
            if journaled and message["type"] == "http.request" and sum(map(len, body_chunks)) < JOURNAL_MAX_BODY:
                body_chunks.append(message.get("body", b""))
            return message

        async def snd(message: Any) -> None:
            if refused[0]:
                return
            if message["type"] == "http.response.start":
                try:  # nothing is acknowledged before what it changed is on disk
                    if store.submitted != writes_before:  # (a poll that changed nothing waits for nobody)
                        await store.committed()
                except StoreUnavailable as exc:
                    refused[0] = True
                    status_box[0] = 503
                    await error(503, f"{exc}; try again later")(scope, receive, send)
                    return
                status_box[0] = message["status"]
            await send(message)

        await self.app(scope, recv, snd)
        self._journal(scope, b"".join(body_chunks)[:JOURNAL_MAX_BODY], status_box[0])

    def _journal(self, scope: Any, body: bytes, status: int) -> None:
        if self.service.settings.test_mode and scope["path"].startswith(BASE):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            for name in SECRET_HEADERS & headers.keys():
                headers[name] = REDACTED
            self.service.store.add_request(scope["method"], scope["path"], headers,
                                           _redact_body(body.decode("utf-8", "replace")), status)

    def _take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        for fault in self.service.faults:
            if fault["count"] > 0 and fault["method"] in ("", method) and re.search(fault["path"], path):
                fault["count"] -= 1
                return fault
        return None


def create_app(service: ReferenceService) -> Any:
    routes = [*agent_routes.ROUTES, *session_routes.ROUTES, *downloads.ROUTES, *host_actions.ROUTES,
              *cluster_actions.ROUTES, *user_routes.ROUTES, *iso_routes.ROUTES, *reference_routes.ROUTES,
              *console.ROUTES, *console_forms.ROUTES, *docs.ROUTES]
    routes += unimplemented.routes(routes)  # the spec's other operations: 501, named (http/unimplemented.py)
    undeclared = [getattr(r, "path", r) for r in routes if not isinstance(getattr(r, "auth", None), Auth)]
    if undeclared:
        raise RuntimeError(f"routes without a declared auth (use http.routing.route): {undeclared}")
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        """Whatever serves the app with its lifespan ends the reply worker with it (``cli`` serves it without,
        and ends the worker on its own way out)."""
        try:
            yield
        finally:
            service.reply_workers.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    app.state.started = time.time()

    async def refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceRefusal)
        if exc.status == 401 and console.wants_sign_in(request):
            return console.sign_in_redirect(request)
        answer = error(exc.status, exc.reason)
        if exc.close:
            answer.headers["connection"] = "close"
        return answer

    app.add_exception_handler(ServiceRefusal, refusal)
    return _Middleware(BrowserGuard(app), service)
