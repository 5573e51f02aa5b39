"""Every answer a generated client (``assisted-service-client``) gets, checked against the response the spec
declares for that operation and status (an error status it does not declare: against its error model): what a
session's test asserts on is then also known to be a document the real service's clients can read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from reference_service import spec

BASE = "/api/assisted-install"


def _routes() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    out = []
    for path, ops in spec.load_spec()["paths"].items():
        pattern = re.compile("^" + BASE + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method, op in ops.items():
            if isinstance(op, dict) and "responses" in op:
                out.append((pattern, method.upper(), op))
    return sorted(out, key=lambda r: r[0].pattern.count("[^/]+"))  # a literal segment before a parameter


def _definition(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/definitions/") else None


@dataclass
class SpecRecorder:
    """Wraps an ``ApiClient``'s REST client: records each answer, and ``problems`` checks them."""

    api_client: Any
    seen: list[tuple[str, str, int, bytes, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rest = self.api_client.rest_client
        original = rest.request

        def request(method: str, url: str, *args: Any, **kw: Any) -> Any:
            try:
                resp = original(method, url, *args, **kw)
            except Exception as exc:  # an ApiException carries the answer too
                status, body = getattr(exc, "status", None), getattr(exc, "body", None)
                headers = getattr(exc, "headers", None) or {}
                if status is not None:
                    data = body.encode() if isinstance(body, str) else (body or b"")
                    self.seen.append((method, url, int(status), data, str(headers.get("content-type", ""))))
                raise
            self.seen.append((method, url, resp.status, resp.data or b"", str(resp.getheader("content-type") or "")))
            return resp

        rest.request = request

    def problems(self) -> list[str]:
        routes = _routes()
        found = []
        for method, url, status, data, ctype in self.seen:
            path = urlsplit(url).path
            op = next((o for pattern, m, o in routes if m == method and pattern.match(path)), None)
            if op is None:
                found.append(f"{method} {path}: no such operation in the spec")
                continue
            declared = op["responses"].get(str(status)) or op["responses"].get("default")
            if declared is None and status < 400:
                found.append(f"{method} {path}: status {status} is not one the spec declares")
                continue
            # an error status the spec does not list for the operation (the real service's handlers answer 409,
            # its parameter checks 400, whatever the operation declares) still carries the spec's error
            schema = (declared or {}).get("schema") or {"$ref": "#/definitions/error"}
            if "json" not in ctype or not data:
                continue
            doc = json.loads(data)
            items = doc if schema.get("type") == "array" else [doc]
            name = _definition(schema.get("items") or {}) if schema.get("type") == "array" else _definition(schema)
            if name is None:
                continue
            found += [f"{method} {path} {status}: {p}" for item in items for p in spec.errors(name, item)]
        return found
