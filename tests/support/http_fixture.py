"""A small HTTP(S) server standing in for a cluster's machine config server and for tang servers.

Run inside a namespace: ``python -m tests.support.http_fixture --address A --port P [--cert C --key K]``.
Routes: ``/config/worker`` (an Ignition 3.2 config, only with ``Authorization: Bearer secret-token`` and
``X-Extra: yes``), ``/not-ignition`` (HTML), ``/adv/good`` and ``/adv`` (a tang advertisement, JWS JSON),
anything else 404.
"""

from __future__ import annotations

import argparse
import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IGNITION = {
    "ignition": {"version": "3.2.0"},
    "storage": {
        "files": [
            {"path": "/etc/kubernetes/kubeconfig", "contents": {"source": "data:,kubeconfig"}},
            {"path": "/etc/kubernetes/manifests/coredns.yaml", "contents": {"source": "data:,coredns"}},
            {"path": "/etc/motd", "contents": {"source": "data:,hello"}},
        ],
        "luks": [{"name": "root", "device": "/dev/disk/by-partlabel/root", "clevis": {"tpm2": True}}],
    },
    "systemd": {"units": [{"name": "kubelet.service", "enabled": True}]},
}
ADVERTISEMENT = {"payload": "eyJrZXlzIjpbXX0", "protected": "eyJhbGciOiJFUzUxMiJ9", "signature": "c2lnbmF0dXJl"}


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/config/worker":
            if self.headers.get("Authorization") != "Bearer secret-token" or self.headers.get("X-Extra") != "yes":
                self._send(401, b'{"error":"unauthorized"}')
            else:
                self._send(200, json.dumps(IGNITION).encode())
        elif self.path == "/not-ignition":
            self._send(200, b"<html>hello</html>", "text/html")
        elif self.path in ("/adv/good", "/adv"):
            self._send(200, json.dumps(ADVERTISEMENT).encode())
        else:
            self._send(404, b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    ns = p.parse_args()
    server = ThreadingHTTPServer((ns.address, ns.port), Handler)
    if ns.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ns.cert, ns.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
