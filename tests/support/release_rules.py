"""What assisted-service releases answer a cluster creation with, ported as facts from the real service's source
(its tags' ``swagger.yaml`` and ``internal/cluster/validations/validations.go``), and a loopback stand-in of
such a release's user API for the swarm's setup. The real service cannot run in CI (a 35-minute Go build and
PostgreSQL), so the tests check the swarm's requests against these facts; bench/real_service.py runs the real
service of today on this machine (docs/real-service.md), and these facts cover the releases before it.

- before 2.12: only ``api_vip`` / ``ingress_vip`` exist (lists are unknown fields, dropped: the VIPs are lost);
- 2.12: both spellings; 2.13 to 2.28: ``api_vips`` without ``api_vip`` alongside is refused with 400 "request
  must include apiVIP alongside apiVIPs", and both must agree ("apiVIP must be the same as the first element of
  apiVIPs");
- from 2.29: only the lists (the singular fields are unknown: dropped);
- every release refuses an OpenShift version it does not list in ``/v2/openshift-versions``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def creation_refusal(release: tuple[int, ...], params: dict[str, Any], versions: list[str]) -> str | None:
    """The 400 reason release ``release`` gives ``params`` (None: created, with its VIPs as sent)."""
    singular: dict[str, Any] = {k: params[k] for k in ("api_vip", "ingress_vip") if k in params}
    lists: dict[str, Any] = {k: params[k] for k in ("api_vips", "ingress_vips") if k in params}
    if params.get("openshift_version") not in versions:
        return f"Openshift version {params.get('openshift_version')} for CPU architecture x86_64 is not supported"
    if release < (2, 12) and lists:
        return "the VIP lists are unknown to this release: the cluster would be created without its VIPs"
    if release >= (2, 29) and singular:
        return "api_vip and ingress_vip are unknown to this release: the cluster would be created without them"
    if (2, 13) <= release < (2, 29):
        for one in ("api", "ingress"):
            many = lists.get(f"{one}_vips") or []
            if many and not singular.get(f"{one}_vip"):
                return f"request must include {one}VIP alongside {one}VIPs"
            if many and singular[f"{one}_vip"] != many[0]["ip"]:
                return f"{one}VIP must be the same as the first element of {one}VIPs"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _send(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.endswith("/v2/component-versions"):
            self._send(200, {"versions": {"assisted-installer-service": self.server.self_version},
                             "release_tag": ""})
        elif self.path.endswith("/v2/openshift-versions"):
            self._send(200, {v: {"display_name": f"{v}.0", "default": v == self.server.versions[-1]}
                             for v in self.server.versions})
        else:
            self._send(404, {"code": "404", "reason": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.server.posted.append((self.path, body))
        if self.path.endswith("/v2/clusters"):
            why = creation_refusal(self.server.release, body, self.server.versions)
            if why:
                self._send(400, {"kind": "Error", "id": 400, "href": "", "code": "400", "reason": why})
            else:
                self._send(201, {**body, "id": str(uuid.uuid4()), "kind": "Cluster"})
        elif self.path.endswith("/v2/infra-envs"):
            self._send(201, {**body, "id": str(uuid.uuid4()), "kind": "InfraEnv"})
        else:
            self._send(404, {"code": "404", "reason": "not found"})

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    release: tuple[int, ...]
    self_version: str
    versions: list[str]
    posted: list[tuple[str, Any]]


@contextlib.contextmanager
def release_stand_in(release: tuple[int, ...], self_version: str, versions: list[str]) -> Iterator[_Server]:
    """A loopback server answering the user calls of the swarm's setup as release ``release`` does;
    ``self_version`` is what its ``/v2/component-versions`` says (``SELF_VERSION``), ``posted`` what it got."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.release, server.self_version, server.versions, server.posted = release, self_version, versions, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
