"""The agent's client of the assisted-service API, on requests.

It behaves like the Go agent's client on the wire: base path ``/api/assisted-install`` appended to ``--url``
(keeping any path prefix), headers ``X-Secret-Key`` (the token), ``Discovery_agent_version`` (the
``--agent-version`` value verbatim: the service replaces every step with ``upgrade-agent`` unless it matches)
and ``X-Request-Id``; a few retries with exponential jittered back-off on 503/504 and connection failures;
TLS verified against the system trust store plus ``--cacert``, skipped only with an explicit ``--insecure``.
Failures surface as :class:`~common.errors.TransportError` (no HTTP answer) or
:class:`~common.errors.ServiceResponseError` (an answer with a status the call does not expect).
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from common import __version__
from common.answers import decode_json, parse_registration
from common.errors import MalformedAnswer, ServiceResponseError, TransportError
from common.limits import MAX_ANSWER_BYTES
from common.logs import redact_url
from common.service_settings import ServiceSettings

log = logging.getLogger(__name__)


BASE_PATH = "/api/assisted-install"
#: (connect, read) seconds. The Go client allows 30 s for a whole request.
DEFAULT_TIMEOUT = (10.0, 30.0)
AGENT_VERSION_HEADER = "Discovery_agent_version"


class _TrustAdapter(HTTPAdapter):
    """An adapter whose TLS trust is an explicit SSLContext: the system store plus the --cacert file.

    requests alone would trust only certifi's bundle (or only the --cacert file when given as ``verify``),
    which is how the Go agent's old behaviour broke custom ingress CAs; the system store plus the extra CA is
    what the Go agent does now. The context is made at the first HTTPS request (loading the system store is a
    good part of the CPU the way to the first register would take), or at once when a --cacert file is given,
    so that a bad file is reported at start.
    """

    def __init__(self, cacert: str | None, max_retries: Retry) -> None:
        self._cacert = cacert
        self._ssl_context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()
        super().__init__(max_retries=max_retries)
        if cacert:
            self.ssl_context()

    def ssl_context(self) -> ssl.SSLContext:
        with self._context_lock:
            if self._ssl_context is None:
                ctx = ssl.create_default_context()
                if self._cacert:
                    ctx.load_verify_locations(cafile=self._cacert)
                self._ssl_context = ctx
                self.poolmanager.connection_pool_kw["ssl_context"] = ctx
            return self._ssl_context

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> Any:
        self.ssl_context()  # this adapter serves https:// only: the context is needed now
        return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self.ssl_context()
        return super().proxy_manager_for(proxy, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if verify is True:
            # Keep our context's trust; do not let requests swap in certifi's bundle.
            conn.ca_certs = None
            conn.ca_cert_dir = None


class _NoNetrc(requests.auth.AuthBase):
    """The service's token is the only credential: set as the session's auth, it stops requests from importing
    and reading ~/.netrc on every request (the Go agent reads no netrc either)."""

    def __call__(self, request: Any) -> Any:
        return request


def _retry_policy() -> Retry:
    return Retry(
        total=3,
        connect=3,
        read=0,  # a request that timed out reading may have been processed; the loops above decide
        status=3,
        other=0,
        status_forcelist=(503, 504),
        allowed_methods=None,  # POST and PUT too: 503/504 mean the service did not act
        backoff_factor=2.0,
        backoff_max=10.0,
        backoff_jitter=1.0,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, the default port filled in: what "the same origin" compares."""
    parts = parse_url(url)
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.host or "").lower().rstrip("."), parts.port or _DEFAULT_PORTS.get(scheme, 0)


_DEFAULT_PORTS = {"http": 80, "https": 443}
TOKEN_HEADER = "X-Secret-Key"


class ServiceSession(requests.Session):
    """A session that sends the agent's token only to the service's own origin (scheme, host and port).

    The header is decided on every request actually sent, redirect hops included (requests' redirect loop
    calls :meth:`send` for each hop, copying the previous hop's headers): a service URL, proxy or image
    server answering 302 to another host, or to another port or scheme of the same host, does not get it.
    requests itself strips only ``Authorization``, and only when the host changes.
    """

    def __init__(self, service_url: str, token: str) -> None:
        super().__init__()
        self.service_origin = origin(service_url)
        self.token = token

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.headers.pop(TOKEN_HEADER, None)
        if self.token and request.url and origin(request.url) == self.service_origin:
            request.headers[TOKEN_HEADER] = self.token
        return super().send(request, **kwargs)


def build_session(config: ServiceSettings, *, token: bool = True) -> requests.Session:
    """A requests session with the agent's TLS, retry and proxy behaviour (proxies come from the environment, and
    from agent.conf for a hand-run agent: the environment's win, as requests puts them first); the token goes to
    the service's origin only, and not at all with ``token=False``."""
    session = ServiceSession(config.url, config.token if token else "")
    session.proxies.update(_proxies(config.proxies, config.url))
    retries = _retry_policy()
    if config.insecure:
        session.verify = False
        session.mount("https://", HTTPAdapter(max_retries=retries))
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    else:
        session.mount("https://", _TrustAdapter(config.cacert, retries))
    session.mount("http://", HTTPAdapter(max_retries=retries))
    session.auth = _NoNetrc()
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = f"assisted-agent/{__version__} (python)"
    if config.agent_version:
        session.headers[AGENT_VERSION_HEADER] = config.agent_version
    return session


def _proxies(variables: Mapping[str, str], url: str) -> dict[str, str]:
    """requests' proxies from proxy variables (not the environment's), NO_PROXY applied to the service's URL."""
    if not variables:
        return {}
    lower = {k.lower(): v for k, v in variables.items()}
    if requests.utils.should_bypass_proxies(url, no_proxy=lower.get("no_proxy")):
        return {}
    return {scheme: lower[f"{scheme}_proxy"] for scheme in ("http", "https") if lower.get(f"{scheme}_proxy")}


def _reason(resp: requests.Response) -> tuple[str, bool]:
    """The service's own words for a failure: Error.reason, InfraError.message, or a router's HTML page; and
    whether the answer was the service's own JSON error document (not a proxy's or a web server's page)."""
    try:
        body = resp.json()
    except ValueError:
        text = re.sub(r"<[^>]+>", " ", resp.text or "")
        return " ".join(text.split())[:300] or (resp.reason or ""), False
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
        self.session = session or build_session(config)
        self.request_id = str(uuid.uuid4())
        self.aborted = False
        self._main_in_flight = False

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
        self.request_id = str(uuid.uuid4())
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
        url = self.base + path
        shown = redact_url(self.config.url)
        hdrs = {"X-Request-Id": self.request_id, **(headers or {})}
        try:
            with self._abortable(f"{method} {path}"):
                resp = self.session.request(
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
            reason, from_service = _reason(resp)
            resp.close()
            raise ServiceResponseError(resp.status_code, reason, from_service=from_service)
        return resp

    # -- the calls the agent makes ------------------------------------------------------------------------
    def register(self, host_id: str) -> dict[str, Any]:
        body = {"host_id": host_id}
        if self.config.agent_version:
            body["discovery_agent_version"] = self.config.agent_version
        path = f"/v2/infra-envs/{self.config.infra_env_id}/hosts"
        resp = self.request("POST", path, json=body, expected=(201,), stream=True)
        return parse_registration(self.read_json(resp, "a HostRegistrationResponse"), "POST " + path)

    def next_steps(self, infra_env_id: str, host_id: str, timestamp: int) -> Any:
        """The decoded poll answer, untrusted: common.answers.parse_steps checks its shape."""
        path = f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions"
        resp = self.request("GET", path, params={"timestamp": timestamp}, stream=True)
        return self.read_json(resp, "a Steps object")

    def read_json(self, resp: requests.Response, what: str, limit: int = MAX_ANSWER_BYTES) -> Any:
        """The JSON body of a streamed answer, read up to ``limit`` bytes: a huge or endless answer is refused
        without being held, a truncated one is a MalformedAnswer like any other garbage."""
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
        return decode_json(b"".join(chunks), resp.headers.get("Content-Type", ""), what, where)

    def post_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any]) -> None:
        self.request(
            "POST", f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions", json=reply, expected=(204,)
        ).close()

    def update_progress(self, infra_env_id: str, host_id: str, stage: str, info: str = "") -> None:
        body = {"current_stage": stage}
        if info:
            body["progress_info"] = info
        self.request(
            "PUT", f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/progress", json=body, expected=(200,)
        ).close()


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
