"""Limits on a request's head, enforced before any route or authentication: size, count and time.

uvicorn's httptools protocol keeps every header it is given (llhttp has no size limit: four 64 MiB headers took
the service from 39 to 310 MiB) and waits for the end of the headers for ever (1,100 connections that trickle
a header exhausted the file descriptors). This protocol is uvicorn's with three guards:

- the request line and headers together at most ``max_bytes`` (answer 431, connection closed);
- at most ``max_count`` headers (431);
- the head complete within ``timeout`` seconds of the connection or of the request's first byte (408); and at
  most ``max_pending`` connections waiting for a head at once: past that the oldest waiting one is closed, so
  slow senders are shed first and a client that sends its head at once is always served.

Go's net/http, in front of the real service, caps the head at 1 MB and has ReadHeaderTimeout; the figures
here are smaller because no client of this API sends more than a few KB (a browser's cookies included).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Status lines of the refusals, with the body that says why (uvicorn's 400 is the model).
_REFUSALS = {
    408: b"408 Request Timeout",
    431: b"431 Request Header Fields Too Large",
}


@dataclass
class HeaderLimits:
    max_bytes: int = 64 * 1024
    max_count: int = 100
    timeout: float = 10.0
    max_pending: int = 1024
    #: connections waiting for their head, oldest first (the shared state of one server's protocols)
    pending: OrderedDict[int, Any] = field(default_factory=OrderedDict)
    refused: dict[int, int] = field(default_factory=lambda: {408: 0, 431: 0})


class _HeadTooLarge(Exception):
    pass


def guarded_protocol(limits: HeaderLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class bound to ``limits`` (pass it as ``uvicorn.Config(http=...)``)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_bytes = 0
        _head_count = 0
        _head_raw = 0
        _head_timer: asyncio.TimerHandle | None = None
        _refusal = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_done()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.timeout, self._refuse, 408)
                limits.pending[id(self)] = self
                while len(limits.pending) > limits.max_pending:
                    _key, oldest = limits.pending.popitem(last=False)
                    oldest._refuse(408)

        def _head_done(self) -> None:
            self._head_raw = 0
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            limits.pending.pop(id(self), None)

        def _refuse(self, status: int) -> None:
            """Answer ``status`` and close: the request never reaches the application."""
            self._head_done()
            if self.transport.is_closing():
                return
            limits.refused[status] = limits.refused.get(status, 0) + 1
            reason = _REFUSALS[status]
            body = reason[4:] + b"\n"
            self.transport.write(b"HTTP/1.1 " + reason + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                                 + body)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if self._refusal:  # a guard stopped the parser: say which, not "invalid request"
                self._refuse(self._refusal)
                return
            super().send_400_response(msg)

        def _count(self, size: int, headers: int = 0) -> None:
            self._head_bytes += size
            self._head_count += headers
            if self._head_bytes > limits.max_bytes or self._head_count > limits.max_count:
                self._refusal = 431
                raise _HeadTooLarge  # llhttp stops; uvicorn calls send_400_response

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None:
                super().data_received(data)
                return
            # httptools buffers a header until its end, without calling back: count what arrives meanwhile
            self._head_raw += len(data)
            super().data_received(data)
            if self._head_timer is not None and self._head_raw > limits.max_bytes:
                self._refuse(431)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = self._head_count = 0
            self._await_head()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4, 1)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._head_done()
            super().on_headers_complete()

    return GuardedHttpToolsProtocol
