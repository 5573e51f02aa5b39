"""Every operation of the spec this service does not serve answers 501 with the spec's error model.

A client calling an operation the reference service lacks got a plain-text 404 or 405 from the router, which
reads as "no such cluster" or a wrong method; the real service answers every operation of its spec. These
routes say instead, in the error body clients already parse, that the operation exists and that this
reference service does not carry it out. They are made from the spec minus the routes the application
declares, so an operation implemented later leaves this list by itself; they carry ``implemented = False``,
so ``/docs`` still shows only the real implementations as implemented. Auth is the operation's own: agent
operations take the agent token, user operations the user's credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from common.errors import ServiceRefusal
from reference_service import spec
from reference_service.http.auth import Auth
from reference_service.http.routing import route

METHODS = ("get", "put", "post", "delete", "patch")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _spec() -> dict[str, Any]:
    import yaml

    with open(spec.BUNDLED_SPEC, encoding="utf-8") as fh:
        # the C loader, as spec.load_spec: the pure-Python one took about 1 s of every start
        doc: dict[str, Any] = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return doc


def reason(method: str, path: str, operation_id: str) -> str:
    return (f"{operation_id} ({method.upper()} {path}) is not implemented by this reference service "
            "(assisted-reference-service, from assisted-agent); the real assisted-service carries it out")


def _endpoint(text: str) -> Any:
    async def not_implemented(request: Request) -> Response:
        raise ServiceRefusal(501, text)

    return not_implemented


def routes(declared: Iterable[BaseRoute]) -> list[BaseRoute]:
    """A 501 route for every spec operation (method and path) none of ``declared`` serves."""
    doc = _spec()
    base = str(doc.get("basePath", ""))
    served = {(m.lower(), _shape(str(getattr(r, "path", "")))) for r in declared
              for m in getattr(r, "methods", None) or ()}
    out: list[BaseRoute] = []
    for path, ops in doc.get("paths", {}).items():
        missing = [m for m in ops if m in METHODS and (m, _shape(base + path)) not in served]
        for method in missing:
            op = ops[method]
            agent = any("agentAuth" in s for s in op.get("security") or [])
            made = route(base + path, _endpoint(reason(method, path, str(op.get("operationId", "")))),
                         methods=[method.upper()], auth=Auth.AGENT_OR_ADMIN if agent else Auth.ADMIN)
            made.implemented = False  # type: ignore[attr-defined]
            out.append(made)
    return out
