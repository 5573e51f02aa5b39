"""The agent's client of the assisted-service API, on requests.

It behaves like the Go agent's client on the wire: base path ``/api/assisted-install`` appended to ``--url``
(keeping any path prefix), headers ``X-Secret-Key`` (the token), ``Discovery_agent_version`` (the
``--agent-version`` value verbatim: the service replaces every step with ``upgrade-agent`` unless it matches)
and ``X-Request-Id``; a few retries with exponential jittered back-off on 503/504 and connection failures;
TLS verified against the system trust store plus ``--cacert``, skipped only with an explicit ``--insecure``.
Failures surface as :class:`~common.errors.TransportError` (no HTTP answer) or
:class:`~common.errors.ServiceResponseError` (an answer with a status the call does not expect).

requests is loaded at the first request that needs it, not at import: the first register and the first poll go
out on a plain socket (common.first_contact) with the same headers and trust, so the service hears of a host
after a few hundredths of a second of CPU; requests (common.http_session) is loaded in the background after them
and carries everything else, and any answer the first contact does not read as requests would (a redirect, a
503 the retry policy handles, a broken connection) is asked again through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator

from common import __version__
from common.errors import MalformedAnswer, ServiceResponseError, TransportError
from common.first_contact import Unreadable, exchange, plain_url, trust_context
from common.lazy_log import LOGGING, LazyLogger, redact_url
from common.limits import MAX_ANSWER_BYTES
from common.uuids import random_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    import ssl
    from typing import Any

    import requests

    from common.service_settings import ServiceSettings

log = LazyLogger(__name__)


BASE_PATH = "/api/assisted-install"
#: (connect, read) seconds. The Go client allows 30 s for a whole request.
DEFAULT_TIMEOUT = (10.0, 30.0)
AGENT_VERSION_HEADER = "Discovery_agent_version"
TOKEN_HEADER = "X-Secret-Key"
USER_AGENT = f"assisted-agent/{__version__} (python)"
#: Variables that make requests send through a proxy, or trust another CA bundle over https: the first contact,
#: which knows neither, then leaves the first requests to requests too.
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
#: Requests that go out on a plain socket before requests is loaded: the first register and the first poll.
#: requests is loaded in the background from the next request on (by then the first poll's quick replies are out:
#: the loading would have shared the interpreter with them), which goes out on a plain socket meanwhile, as do the
#: step replies and the polls that come before it is loaded (see _first_contact).
FIRST_CONTACTS = 2
_NOT_SENT = object()


def build_session(config: ServiceSettings, *, token: bool = True) -> requests.Session:
    """A requests session with the agent's TLS, retry and proxy behaviour (common.http_session.build_session),
    for steps that download from the service or an image server."""
    from common.http_session import build_session as build

    return build(config, token=token)


def _reason(text: str, phrase: str) -> tuple[str, bool]:
    """The service's own words for a failure: Error.reason, InfraError.message, or a router's HTML page; and
    whether the answer was the service's own JSON error document (not a proxy's or a web server's page).
    ``text``: the answer's body; ``phrase``: its status line's reason phrase."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        text = re.sub(r"<[^>]+>", " ", text)
        return " ".join(text.split())[:300] or phrase, False
    if isinstance(body, dict):
        for key in ("reason", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key]), True
    return str(body)[:300], False


def _plain_http(reason: str) -> bool:
    """Whether a TLS handshake failed because the other end answered in plain HTTP (https:// to an http port):
    OpenSSL then reads an HTTP status line as a TLS record."""
    lowered = reason.lower()
    return "wrong version number" in lowered or "record layer failure" in lowered \
        or "packet length too long" in lowered or "http request" in lowered


class _Aborted(BaseException):
    """Raised by :meth:`ServiceClient.abort` from a signal handler into the main thread's request in flight.

    A BaseException, so that no ``except Exception`` on the way (urllib3's, requests') swallows it; the
    request turns it into a TransportError."""


class ServiceClient:
    """One agent's connection to the service. Thread-safe for concurrent replies (requests' pool is)."""

    def __init__(self, config: ServiceSettings, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.base = config.url.rstrip("/") + BASE_PATH
        self._session = session
        self._session_lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None  # the first contact's, handed on to the session
        #: whether a plain socket may carry a request: not when requests would do what the first contact cannot,
        #: nor after a first contact that failed short of an answer
        self._plain = session is None and _first_contact_can(config)
        #: registers and polls still to go out on a plain socket
        self._first_contacts = FIRST_CONTACTS if self._plain else 0
        self._prefetching = False
        self.request_id = random_uuid()
        self.aborted = False
        self._main_in_flight = False

    @property
    def session(self) -> requests.Session:
        """The requests session, built (requests loaded) at its first use; no first contact after that."""
        with self._session_lock:
            if self._session is None:
                LOGGING.apply()  # urllib3 logs through the logging package: configured (redacting) first
                from common.http_session import build_session as build

                self._first_contacts = 0
                self._session = build(self.config, ssl_context=None if self.config.insecure else self._tls)
            return self._session

    def prefetch(self) -> None:
        """Build the session in the background (once), so that no request waits for requests to load: those that
        come meanwhile go out on a plain socket (_first_contact)."""
        if self._session is None and not self._prefetching:
            self._prefetching = True
            threading.Thread(target=lambda: self.session, name="service-session", daemon=True).start()

    def abort(self) -> None:
        """Give up the main thread's request in flight, and fail its later ones at once: the agent is stopping.

        Called from a signal handler, which Python runs in the main thread between two bytecodes or when a
        blocking call returns EINTR; raising there ends a connect, a read or a retry's back-off sleep at once
        (PEP 475 retries a call only when the handler returns). Step threads' requests are not touched: their
        replies still go out within the stop's grace period.
        """
        self.aborted = True
        if self._main_in_flight:
            raise _Aborted

    @contextlib.contextmanager
    def _abortable(self, what: str) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        if self.aborted:
            raise TransportError(f"{what}: not sent, the agent is stopping")
        try:
            self._main_in_flight = True
            try:
                yield
            finally:
                self._main_in_flight = False
        except _Aborted:
            raise TransportError(f"{what}: given up, the agent is stopping") from None

    def new_request_id(self) -> str:
        """Start a new 'session' as the Go agent does: one id per registration attempt or poll iteration."""
        self.request_id = random_uuid()
        return self.request_id

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        expected: Iterable[int] = (200,),
        stream: bool = False,
        timeout: tuple[float, float] | float | None = None,
    ) -> requests.Response:
        session = self.session
        import requests  # loaded by the session

        url = self.base + path
        shown = redact_url(self.config.url)
        hdrs = {"X-Request-Id": self.request_id, **(headers or {})}
        try:
            with self._abortable(f"{method} {path}"):
                resp = session.request(
                    method, url, json=json, data=data, files=files, params=params, headers=hdrs, stream=stream,
                    timeout=timeout or DEFAULT_TIMEOUT,
                    # explicit, because REQUESTS_CA_BUNDLE in the environment would override session.verify=False
                    verify=not self.config.insecure,
                )
        except requests.exceptions.SSLError as exc:
            reason = _short(exc)
            if _plain_http(reason):  # Go's words for it, then ours
                raise TransportError(
                    f"{method} {path}: http: server gave HTTP response to HTTPS client ({shown}: {reason})",
                    hint="the service at this address speaks plain HTTP: use http:// in --url") from exc
            raise TransportError(f"TLS verification of {shown} failed: {reason}", hint=tls_hint(reason)) from exc
        except requests.exceptions.Timeout as exc:
            raise TransportError(f"{method} {path}: the service did not answer in time: {_short(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(
                f"{method} {path}: cannot reach {shown}: {_short(exc)}",
                hint="check --url, the network and the proxy variables",
            ) from exc
        if resp.status_code not in tuple(expected):
            reason, from_service = _reason(resp.text or "", resp.reason or "")
            resp.close()
            raise ServiceResponseError(resp.status_code, reason, from_service=from_service)
        return resp

    # -- the calls the agent makes ------------------------------------------------------------------------
    def register(self, host_id: str) -> dict[str, Any]:
        body = {"host_id": host_id}
        if self.config.agent_version:
            body["discovery_agent_version"] = self.config.agent_version
        path = f"/v2/infra-envs/{self.config.infra_env_id}/hosts"
        what = "a HostRegistrationResponse"
        answer = self._first_contact("POST", path, body=body, expected=201, what=what)
        from common.answers import parse_registration

        if answer is _NOT_SENT:
            answer = self.read_json(self.request("POST", path, json=body, expected=(201,), stream=True), what)
        return parse_registration(answer, "POST " + path)

    def next_steps(self, infra_env_id: str, host_id: str, timestamp: int) -> Any:
        """The decoded poll answer, untrusted: common.answers.parse_steps checks its shape."""
        path = f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions"
        params = {"timestamp": timestamp}
        answer = self._first_contact("GET", path, params=params, expected=200, what="a Steps object")
        if answer is _NOT_SENT:
            answer = self.read_json(self.request("GET", path, params=params, stream=True), "a Steps object")
        return answer

    def _first_contact(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                       expected: int, what: str, reply: bool = False) -> Any:
        """The decoded answer of ``method path`` sent on a plain socket (common.first_contact), or _NOT_SENT
        when it must go through requests: the first contacts are over, or this one failed short of an answer
        (then requests asks again, with its retries and its words for the failure), or was a redirect or a
        503/504 (requests follows and retries those). A ``reply`` (from any thread, answered without a body)
        goes out so as long as the requests session is not built yet; it does not count as a first contact. A
        poll or a register of the main thread after the first contacts starts the loading of requests in the
        background (prefetch) and goes out so too, as do the next ones until requests is loaded: it is about
        0.1 s of CPU, which on a loaded machine can take longer than ``next_instruction_seconds`` (1 s in the Go
        suite), and a poll waited for it."""
        if reply:
            if not self._plain or self._session is not None:
                return _NOT_SENT
        elif not self._plain or self._session is not None or threading.current_thread() is not threading.main_thread():
            return _NOT_SENT
        elif self._first_contacts <= 0:
            self.prefetch()
        config = self.config
        parts = plain_url(self.base)
        if parts is None:  # not after _first_contact_can: the base is the plain --url and a plain path
            return _NOT_SENT
        scheme, netloc, hostname, port, base_path = parts
        query = ""
        if params:
            query = f"?{_plain_query(params)}"
        target = (base_path or "/") + path + query
        data = b"" if body is None else json.dumps(body, allow_nan=False).encode()
        fields = {"Host": netloc, "User-Agent": USER_AGENT, "Accept": "application/json",
                  "Connection": "close", "X-Request-Id": self.request_id}
        if config.agent_version:
            fields[AGENT_VERSION_HEADER] = config.agent_version
        if config.token:
            fields[TOKEN_HEADER] = config.token
        if body is not None:
            fields.update({"Content-Type": "application/json", "Content-Length": str(len(data))})
        where = f"{method} {redact_url(self.base + path)}"
        try:
            if any("\r" in v or "\n" in v for v in fields.values()):
                raise ValueError("a header value with a line break")  # requests refuses it, in its words
            head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
            if scheme == "https" and self._tls is None:
                self._tls = trust_context(config.cacert, insecure=config.insecure)
            tls = self._tls if scheme == "https" else None
            with self._abortable(f"{method} {path}"):
                answer = exchange(hostname, port, f"{method} {target} HTTP/1.1\r\n{head}\r\n"
                                  .encode("ascii"), data, timeout=DEFAULT_TIMEOUT, limit=MAX_ANSWER_BYTES, tls=tls)
        except (OSError, Unreadable, ValueError):  # ValueError: a port, a header or a host name not plain
            self._first_contacts, self._plain = 0, False
            return _NOT_SENT
        if 300 <= answer.status < 400 or answer.status in (503, 504):
            self._first_contacts, self._plain = 0, False
            return _NOT_SENT
        if not reply and self._first_contacts > 0:
            self._first_contacts -= 1
        if answer.status != expected:
            reason, from_service = _reason(answer.body.decode("utf-8", "replace"), answer.phrase)
            raise ServiceResponseError(answer.status, reason, from_service=from_service)
        if reply:
            return None
        from common.answers import decode_json

        return decode_json(answer.body, answer.headers.get("content-type", ""), what, where)

    def read_json(self, resp: requests.Response, what: str, limit: int = MAX_ANSWER_BYTES) -> Any:
        """The JSON body of a streamed answer, read up to ``limit`` bytes: a huge or endless answer is refused
        without being held, a truncated one is a MalformedAnswer like any other garbage."""
        import requests  # loaded by the session that made ``resp``

        where = f"{resp.request.method} {redact_url(resp.url)}"
        chunks: list[bytes] = []
        size = 0
        try:
            declared = int(resp.headers.get("Content-Length") or 0)
            if declared > limit:
                raise MalformedAnswer(f"{where} answered {declared} bytes, more than the {limit} the agent accepts")
            with self._abortable(where):
                for chunk in resp.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise MalformedAnswer(f"{where} answered more than the {limit} bytes the agent accepts")
                    chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{where}: the answer broke off after {size} bytes: {_short(exc)}") from exc
        except ValueError as exc:  # a Content-Length that is not a number
            raise MalformedAnswer(f"{where}: unreadable answer headers: {exc}") from exc
        finally:
            resp.close()
        from common.answers import decode_json

        return decode_json(b"".join(chunks), resp.headers.get("Content-Type", ""), what, where)

    def post_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any]) -> None:
        """Post one step reply. While requests is still loading (right after the first poll) the reply goes out
        on a plain socket rather than waiting for it: loading it costs about 0.1 s of CPU, several times that
        in wall time on a loaded machine, and the first poll's quick replies (an unknown step type, bad
        arguments) would all wait for it; the Go agent posts them within milliseconds of the poll."""
        path = f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions"
        if self._first_contact("POST", path, body=reply, expected=204, what="", reply=True) is _NOT_SENT:
            self.request("POST", path, json=reply, expected=(204,)).close()

    def update_progress(self, infra_env_id: str, host_id: str, stage: str, info: str = "") -> None:
        body = {"current_stage": stage}
        if info:
            body["progress_info"] = info
        self.request(
            "PUT", f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/progress", json=body, expected=(200,)
        ).close()


def _first_contact_can(config: ServiceSettings) -> bool:
    """Whether the first register and poll may go out on a plain socket: to an http(s) URL without credentials
    in it, with no proxy, and over https with no CA bundle variable requests would add to the trust (the first
    contact knows neither); a URL that is not plain (common.first_contact.plain_url: credentials, a query, an
    escape...) is left to requests."""
    parts = plain_url(config.url)
    if parts is None:
        return False
    blocking = _PROXY_ENV + (_CA_BUNDLE_ENV if parts[0] == "https" else ())
    return not config.proxies and not any(os.environ.get(name) for name in blocking)


def tls_hint(reason: str) -> str:
    """What to do about a failed TLS verification; the CA is only one of its causes."""
    lowered = reason.lower()
    if "expired" in lowered or "not yet valid" in lowered:
        return ("the service's certificate is outside its validity period: renew it on the service, or fix this "
                "host's clock if it is wrong (compare `date` with the certificate's dates)")
    if "hostname mismatch" in lowered or "doesn't match" in lowered or "ip address mismatch" in lowered:
        return ("the service's certificate does not name the host in --url: use a --url whose host is in the "
                "certificate's subjectAltName, or reissue the certificate for this name")
    return "pass the service's CA with --cacert PATH (or --insecure=true for a test service)"


def _short(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, without the noise of the wrappers."""
    inner: BaseException = exc
    while True:
        nxt = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    text = str(inner)
    return re.sub(r"<urllib3\.connection\.\w+ object at 0x[0-9a-f]+>: ", "", text)[:300]


def _plain_query(params: dict[str, Any]) -> str:
    """``urlencode(params)``, written out when every key is an ASCII identifier and every value an int (the
    poll's ``timestamp``: urlencode would leave them as they are). Why: urllib.parse imports ipaddress, ~5 ms of
    CPU between the first register and the first poll."""
    if all(k.isascii() and k.isidentifier() and type(v) is int for k, v in params.items()):
        return "&".join(f"{k}={v}" for k, v in params.items())
    from urllib.parse import urlencode

    return urlencode(params)
