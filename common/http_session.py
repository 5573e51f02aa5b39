"""The requests session the agent's service client talks through (common.service_client): TLS trust, retries,
proxies, and the token sent to the service's origin only.

A module of its own so that nothing imports requests and urllib3 (about 0.1 s of CPU, more than everything else
the agent does before its first register) until a request needs them: the first register and poll go out on a
plain socket (common.first_contact), and every request after them through this session.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from common.first_contact import trust_context
from common.service_client import AGENT_VERSION_HEADER, TOKEN_HEADER, USER_AGENT
from common.service_settings import ServiceSettings


class _TrustAdapter(HTTPAdapter):
    """An adapter whose TLS trust is an explicit SSLContext: the system store plus the --cacert file.

    requests alone would trust only certifi's bundle (or only the --cacert file when given as ``verify``),
    which is how the Go agent's old behaviour broke custom ingress CAs; the system store plus the extra CA is
    what the Go agent does now. The context is made at the first HTTPS request (loading the system store is a
    good part of the CPU the way to the first register would take), or at once when a --cacert file is given,
    so that a bad file is reported at start.
    """

    def __init__(self, cacert: str | None, max_retries: Retry, context: ssl.SSLContext | None = None) -> None:
        self._cacert = cacert
        self._ssl_context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()
        super().__init__(max_retries=max_retries)
        if cacert or context is not None:
            self.ssl_context(context)

    def ssl_context(self, made: ssl.SSLContext | None = None) -> ssl.SSLContext:
        """The context, made now if it is not yet (``made``: one the first contact already built alike)."""
        with self._context_lock:
            if self._ssl_context is None:
                ctx = made or trust_context(self._cacert)
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


def build_session(config: ServiceSettings, *, token: bool = True,
                  ssl_context: ssl.SSLContext | None = None) -> requests.Session:
    """A requests session with the agent's TLS, retry and proxy behaviour (proxies come from the environment, and
    from agent.conf for a hand-run agent: the environment's win, as requests puts them first); the token goes to
    the service's origin only, and not at all with ``token=False``. ``ssl_context``: the trust the agent's first
    contact already loaded (common.first_contact.trust_context), so it is not loaded twice."""
    session = ServiceSession(config.url, config.token if token else "")
    session.proxies.update(_proxies(config.proxies, config.url))
    retries = _retry_policy()
    if config.insecure:
        session.verify = False
        session.mount("https://", HTTPAdapter(max_retries=retries))
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    else:
        session.mount("https://", _TrustAdapter(config.cacert, retries, ssl_context))
    session.mount("http://", HTTPAdapter(max_retries=retries))
    session.auth = _NoNetrc()
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = USER_AGENT
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
