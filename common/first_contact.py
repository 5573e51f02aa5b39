"""One HTTP/1.1 exchange on a plain socket: how the agent's first register and first poll reach the service
without waiting for requests to load.

Why: importing requests and urllib3 costs about 0.1 s of CPU on a quiet machine, many times that on a loaded
or emulated one, more than everything else the agent does before its first register; the standard library's
http.client would still cost a fifth of it (it loads the email package to parse headers). The Go agent's first
register comes after 0.04 s of CPU. A register and a poll are each a small JSON request and a small JSON
answer on a fresh connection: this sends one with the headers, timeouts and TLS trust of the requests session
(common.http_session) and reads the answer. An answer it is not sure to read as requests would (a 1xx, a header
block it cannot parse, a transfer coding other than chunked, a content coding, more than the size limit) raises
:class:`Unreadable`; the caller then sends the request through requests, which carries every request after the
first ones (common.service_client).
"""

from __future__ import annotations

import _socket
import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    import socket
    import ssl

#: A status line and header block longer than this is not an answer of the service's.
MAX_HEAD_BYTES = 64 * 1024
_RECV = 64 * 1024


#: An http(s) URL that urllib.parse.urlsplit reads as this reads it: a lower-case scheme, a host name or IPv4
#: address, a port, a path of unreserved and sub-delimiter characters; no user, query, fragment, percent-escape,
#: space or other character urlsplit would strip, decode or refuse, and no bracketed IPv6 address (urlsplit checks
#: one with ipaddress, which is what this avoids).
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?")


def plain_url(url: str) -> tuple[str, str, str, int, str] | None:
    """(scheme, netloc, host name, port, path) of ``url`` when it is plain as above, as urlsplit gives them (the
    port filled in from the scheme; the host lower-cased); None for any other URL (the caller
    asks urllib.parse). Why: urllib.parse with ipaddress, which it imports, costs ~5 ms of CPU on the daemon's
    way to its first register, whose URL is always plain in practice."""
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    scheme, host, port, path = match.groups()
    number = int(port) if port else (443 if scheme == "https" else 80)
    if not 0 < number < 65536:
        return None  # urlsplit's port raises ValueError above 65535; 0 is taken for the scheme's by the callers
    return scheme, host + (f":{port}" if port else ""), host.lower(), number, path or ""


class Unreadable(Exception):
    """The answer is not one this reader is sure to read as requests would: send the request through requests."""


class Answer:
    """A status and its reason phrase, the headers (names lower-cased) and the whole body."""

    __slots__ = ("body", "headers", "phrase", "status")

    def __init__(self, status: int, phrase: str, headers: dict[str, str], body: bytes) -> None:
        self.status, self.phrase, self.headers, self.body = status, phrase, headers, body


def trust_context(cacert: str | None, *, insecure: bool = False) -> ssl.SSLContext:
    """The agent's TLS trust: the system store plus the ``--cacert`` file; nothing verified with ``--insecure``
    (requests' ``verify=False``). ssl is imported here: an http:// service never needs it."""
    import ssl

    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    if cacert:
        ctx.load_verify_locations(cafile=cacert)
    return ctx


def exchange(host: str, port: int, head: bytes, body: bytes, *, timeout: tuple[float, float], limit: int,
             tls: ssl.SSLContext | None = None) -> Answer:
    """Send ``head`` (request line and headers, ending in an empty line) and ``body`` to ``host:port`` on a new
    connection, and read the whole answer. ``timeout``: (connect, read) seconds, as requests takes them.
    Raises OSError (ssl.SSLError included) when the exchange fails, Unreadable as said above."""
    # An ASCII name as bytes, which getaddrinfo takes as is (typeshed says str only): for a str it loads the
    # idna codec (stringprep, unicodedata) first, a millisecond or two of the way to the first register.
    name = host.encode() if host.isascii() else host
    sock: _socket.socket = _connect(name, port, timeout[0])
    try:
        if tls is not None:
            import socket  # ssl wraps the socket module's class (and imports it itself)

            plain = socket.socket(fileno=sock.detach())
            plain.settimeout(timeout[0])  # the handshake within the connect timeout
            sock = tls.wrap_socket(plain, server_hostname=host)
        sock.settimeout(timeout[1])
        sock.sendall(head + body)
        return _Reader(sock, limit).answer()
    finally:
        sock.close()


def _connect(host: bytes | str, port: int, timeout: float) -> _socket.socket:
    """``socket.create_connection((host, port), timeout)`` on the C module's socket: each address getaddrinfo
    gives, in its order, until one connects; the last error otherwise. Why: the socket module makes its enums
    (AddressFamily, SocketKind, MsgFlag, AddressInfo) at import, with selectors: ~5 ms of CPU on the daemon's
    way to its first register, where plain connect, send and recv are all that is used."""
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)  # not inheritable, as the socket module's (PEP 446)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"getaddrinfo gave no address for {host!r}")


class _Reader:
    def __init__(self, sock: _socket.socket | socket.socket, limit: int) -> None:
        self.sock, self.limit, self.buf = sock, limit, b""

    def _more(self) -> bool:
        chunk = self.sock.recv(_RECV)
        self.buf += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > MAX_HEAD_BYTES:
                raise Unreadable("a header line longer than 64 KiB")
            if not self._more():
                raise ConnectionResetError("the service closed the connection before its answer was complete")
        line, self.buf = self.buf[:end], self.buf[end + 2:]
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not self._more():
                raise ConnectionResetError("the service closed the connection before its answer was complete")
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def answer(self) -> Answer:
        version, _, rest = self._line().partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise Unreadable(f"not an HTTP/1.x status line: {version[:20]!r}")
        status, phrase = int(code), rest[4:].decode("latin-1").strip()
        headers: dict[str, str] = {}
        size = 0
        while line := self._line():
            size += len(line)
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or name != name.strip() or not name or size > MAX_HEAD_BYTES:
                raise Unreadable("a header line that is not NAME: VALUE")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if status < 200:
            raise Unreadable(f"an interim answer ({status})")
        if headers.get("content-encoding", "identity").lower() != "identity":
            raise Unreadable("a content coding")
        if status in (204, 304):
            return Answer(status, phrase, headers, b"")
        return Answer(status, phrase, headers, self._body(headers))

    def _body(self, headers: dict[str, str]) -> bytes:
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.lower() != "chunked":
                raise Unreadable(f"transfer coding {coding!r}")
            return self._chunked()
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Unreadable(f"Content-Length {length!r}")
            if int(length) > self.limit:
                raise Unreadable("an answer larger than the agent accepts")
            return self._exactly(int(length))
        while self._more():  # the request said Connection: close: the body ends with the connection
            if len(self.buf) > self.limit:
                raise Unreadable("an answer larger than the agent accepts")
        data, self.buf = self.buf, b""
        return data

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                size = -1
            if size < 0:
                raise Unreadable(f"a chunk size {size_text[:20]!r}")
            if size == 0:
                while self._line():  # trailers, if any, end with an empty line
                    pass
                return b"".join(parts)
            total += size
            if total > self.limit:
                raise Unreadable("an answer larger than the agent accepts")
            parts.append(self._exactly(size))
            if self._exactly(2) != b"\r\n":
                raise Unreadable("a chunk not followed by CRLF")
