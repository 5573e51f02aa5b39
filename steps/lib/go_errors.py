"""The Go agent's wording for failures that users and the service read, built from Python's exceptions.

Why: the service shows a step's ``error`` (and api-vip's ``download_error``) to people as is, and people
search for what the Go agent printed (``dial tcp 10.0.0.5:7500: connect: connection refused``), not for
urllib3's ``HTTPConnectionPool(...): Max retries exceeded``. Go's net/http says ``Get "<url>": <cause>``;
the cause names the syscall and the errno text, which is strerror in lower case. Where Python knows more
(OpenSSL's verify reason), it follows the Go wording in parentheses.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

#: getaddrinfo failures that Go's resolver reports as "no such host".
_NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything behind it: __cause__, __context__, and exceptions carried as arguments
    (requests wraps urllib3's MaxRetryError, which carries its reason as an attribute)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__, getattr(current, "reason", None),
                                *current.args) if isinstance(e, BaseException))


def _dial_address(url: str) -> str:
    """host:port as Go's dialer prints it (an IPv6 literal in brackets); the default port of the scheme."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443 if parts.scheme == "https" else 80
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{host}:{port}"


def _x509(error: ssl.SSLCertVerificationError) -> str:
    reason = str(error.verify_message or error.reason or error)
    if "expired" in reason or "not yet valid" in reason:
        text = "x509: certificate has expired or is not yet valid"
    elif "Hostname mismatch" in reason or "IP address mismatch" in reason:
        text = "x509: certificate is not valid for this host"
    else:
        text = "x509: certificate signed by unknown authority"
    return f"tls: failed to verify certificate: {text} ({reason})"


def cause(url: str, exc: BaseException) -> str:
    """What Go's client would put after ``Get "<url>": `` for this failure."""
    chain = list(_causes(exc))
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            return _x509(error)
    for error in chain:
        if isinstance(error, socket.gaierror):
            host = urlsplit(url).hostname or ""
            what = "no such host" if error.errno in _NO_SUCH_HOST else str(error.strerror or error).lower()
            return f"dial tcp: lookup {host}: {what}"
    for error in chain:
        if isinstance(error, TimeoutError) or type(error).__name__ in ("ConnectTimeout", "ReadTimeout"):
            return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    for error in chain:
        if type(error).__name__ == "RemoteDisconnected":  # a ConnectionResetError, but no reset was seen
            return "EOF"
        if isinstance(error, ConnectionResetError):
            return "read: connection reset by peer"
        if isinstance(error, OSError) and not isinstance(error, ssl.SSLError) and error.errno:
            return f"dial tcp {_dial_address(url)}: connect: {os.strerror(error.errno).lower()}"
    for error in chain:
        if isinstance(error, ssl.SSLError):
            return f"tls: {error.reason or error}".lower()
    return str(exc)


def http_error(method: str, url: str, exc: BaseException) -> str:
    """Go's ``*url.Error`` text: ``Get "http://host:7500/adv/x": dial tcp host:7500: connect: connection refused``."""
    return f'{method.capitalize()} "{url}": {cause(url, exc)}'


def errno_text(code: int) -> str:
    """Go's ``syscall.Errno`` text: strerror in lower case (``numerical result out of range``)."""
    return os.strerror(code).lower()


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string: double quotes, backslash escapes, printable characters kept."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def validation_failures(problems: list[str]) -> str:
    """go-openapi's CompositeValidationError text, as the Go agent replies it for a model that fails
    ``Validate``: ``validation failure list:`` and one line per failed field."""
    return "validation failure list:\n" + "\n".join(problems)


def json_kind(value: object) -> str:
    """The JSON kind Go's encoding/json names in ``json: cannot unmarshal <kind> into ...``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
