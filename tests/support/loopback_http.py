"""A loopback HTTP server for unit tests: it answers GET and POST requests from a script (answers given in order,
whatever the path) and then a table (path -> status, body, headers), remembers the headers of each request and
the body of each POST, and runs in a thread for as long as the ``serving`` context lasts. One helper for what the
steps' tests (bounded bodies, tang servers, the API VIP's Ignition) and the registration's each wrote."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


class LoopbackHTTP(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        #: path -> (status, body, extra headers); other paths are 404 with no body, or ``fallback`` when set.
        self.answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.fallback: tuple[int, bytes, dict[str, str]] | None = None
        #: Answers taken before the table's, one a request, in order (what a service says to each attempt).
        self.script: list[tuple[int, bytes, dict[str, str]]] = []
        #: The headers of every request, in order.
        self.seen: list[dict[str, str]] = []
        #: The body of every POST, in order.
        self.posted: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                outer.seen.append(dict(self.headers))
                self.answer()

            def do_POST(self) -> None:
                outer.seen.append(dict(self.headers))
                outer.posted.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.answer()

            def answer(self) -> None:
                try:
                    status, body, headers = outer.script.pop(0)
                except IndexError:
                    status, body, headers = outer.answers.get(self.path, outer.fallback or (404, b"", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str, body: bytes, status: int = 200, **headers: str) -> None:
        self.answers[path] = (status, body, {k.replace("_", "-"): v for k, v in headers.items()})


@contextlib.contextmanager
def serving() -> Iterator[LoopbackHTTP]:
    """A started server on 127.0.0.1 (a free port), shut down and closed on the way out."""
    srv = LoopbackHTTP()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
