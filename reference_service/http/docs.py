"""API docs: the bundled spec itself (``/swagger.yaml``, ``/openapi.json``) and ``/docs``, Swagger UI over it.

Swagger UI is vendored in the package (``pages/static/swagger-ui``), so the page works offline. The spec
``/docs`` shows is the bundled one with each operation marked: which ones this service implements is read
from the application's own routes, so the marks cannot drift from the code. Its ``host`` and ``schemes`` are
this service's, so "Try it out" calls this service and nothing else.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from reference_service import spec
from reference_service.http.auth import Auth
from reference_service.http.console import page_context
from reference_service.http.routing import route
from reference_service.pages.render import render

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
IMPLEMENTED = "✔ implemented here"


@functools.cache
def bundled_spec() -> dict[str, Any]:
    import yaml

    with open(spec.BUNDLED_SPEC, encoding="utf-8") as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    return doc


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def implemented_operations(app: Any, doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, spec path) of every spec operation that one of the app's routes serves."""
    served = {(m.lower(), _shape(r.path)) for r in app.routes if hasattr(r, "methods") and r.methods
              and getattr(r, "implemented", True) for m in r.methods}  # (not the 501s: http/unimplemented)
    base = doc.get("basePath", "")
    return {(m, p) for p, ops in doc.get("paths", {}).items() for m in ops
            if m in METHODS and (m, _shape(base + p)) in served}


def marked_spec(app: Any, host: str, scheme: str) -> dict[str, Any]:
    doc = copy.deepcopy(bundled_spec())
    done = implemented_operations(app, doc)
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if method not in METHODS or not isinstance(op, dict):
                continue
            yes = (method, path) in done
            op["x-implemented-here"] = yes
            op["summary"] = IMPLEMENTED if yes else "real service only"
            if yes:
                op["tags"] = ["implemented here", *op.get("tags", [])]
    doc["tags"] = [{"name": "implemented here", "description": "Operations this reference service serves"},
                   *doc.get("tags", [])]
    doc["host"], doc["schemes"] = host, [scheme]
    return doc


def operation_counts(app: Any) -> tuple[int, int]:
    doc = bundled_spec()
    total = sum(1 for ops in doc.get("paths", {}).values() for m in ops if m in METHODS)
    return len(implemented_operations(app, doc)), total


async def docs_page(request: Request) -> Response:
    implemented, total = operation_counts(request.app)
    return HTMLResponse(render("docs.html", **page_context(request, "API docs"), implemented=implemented,
                               total=total))


async def docs_spec(request: Request) -> Response:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return JSONResponse(marked_spec(request.app, host, request.url.scheme))


async def swagger_yaml(request: Request) -> Response:
    return Response(spec.BUNDLED_SPEC.read_bytes(), media_type="application/yaml")


async def openapi_json(request: Request) -> Response:
    return Response(json.dumps(bundled_spec()), media_type="application/json")


ROUTES = [
    route("/docs", docs_page, methods=["GET"], auth=Auth.ADMIN),
    route("/docs/spec.json", docs_spec, methods=["GET"], auth=Auth.ADMIN),
    route("/swagger.yaml", swagger_yaml, methods=["GET"], auth=Auth.ADMIN),
    route("/openapi.json", openapi_json, methods=["GET"], auth=Auth.ADMIN),
]
