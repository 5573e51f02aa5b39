"""The agent's client of the assisted-service API, on requests.

It behaves like the Go agent's client on the wire: base path ``/api/assisted-install`` appended to ``--url``
(keeping any path prefix), headers ``X-Secret-Key`` (the token), ``Discovery_agent_version`` (the
``--agent-version`` value verbatim: the service replaces every step with ``upgrade-agent`` unless it matches)
and ``X-Request-Id``; a few retries with exponential jittered back-off on 503/504 and connection failures;
TLS verified against the system trust store plus ``--cacert``, skipped only with an explicit ``--insecure``.
Failures surface as :class:`~agent.errors.TransportError` (no HTTP answer) or
:class:`~agent.errors.ServiceResponseError` (an answer with a status the call does not expect).
"""

from __future__ import annotations

import logging
import re
import ssl
import uuid
from collections.abc import Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from agent import __version__
from agent.config import AgentConfig
from agent.errors import ServiceResponseError, TransportError

log = logging.getLogger(__name__)

BASE_PATH = "/api/assisted-install"
#: (connect, read) seconds. The Go client allows 30 s for a whole request.
DEFAULT_TIMEOUT = (10.0, 30.0)
AGENT_VERSION_HEADER = "Discovery_agent_version"


class _TrustAdapter(HTTPAdapter):
    """An adapter whose TLS trust is an explicit SSLContext: the system store plus the --cacert file.

    requests alone would trust only certifi's bundle (or only the --cacert file when given as ``verify``),
    which is how the Go agent's old behaviour broke custom ingress CAs; the system store plus the extra CA is
    what the Go agent does now.
    """

    def __init__(self, ssl_context: ssl.SSLContext, max_retries: Retry) -> None:
        self._ssl_context = ssl_context
        super().__init__(max_retries=max_retries)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._ssl_context
        return super().proxy_manager_for(proxy, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if verify is True:
            # Keep our context's trust; do not let requests swap in certifi's bundle.
            conn.ca_certs = None
            conn.ca_cert_dir = None


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


def build_session(config: AgentConfig) -> requests.Session:
    """A requests session with the agent's TLS, retry and proxy behaviour (proxies come from the env)."""
    session = requests.Session()
    retries = _retry_policy()
    if config.insecure:
        session.verify = False
        session.mount("https://", HTTPAdapter(max_retries=retries))
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    else:
        ctx = ssl.create_default_context()
        if config.cacert:
            ctx.load_verify_locations(cafile=config.cacert)
        session.mount("https://", _TrustAdapter(ctx, retries))
    session.mount("http://", HTTPAdapter(max_retries=retries))
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = f"assisted-agent/{__version__} (python)"
    if config.token:
        session.headers["X-Secret-Key"] = config.token
    if config.agent_version:
        session.headers[AGENT_VERSION_HEADER] = config.agent_version
    return session


def _reason(resp: requests.Response) -> str:
    """The service's own words for a failure: Error.reason, InfraError.message, or a router's HTML page."""
    try:
        body = resp.json()
    except ValueError:
        text = re.sub(r"<[^>]+>", " ", resp.text or "")
        return " ".join(text.split())[:300] or (resp.reason or "")
    if isinstance(body, dict):
        for key in ("reason", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:300]


class ServiceClient:
    """One agent's connection to the service. Thread-safe for concurrent replies (requests' pool is)."""

    def __init__(self, config: AgentConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.base = config.url.rstrip("/") + BASE_PATH
        self.session = session or build_session(config)
        self.request_id = str(uuid.uuid4())

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
        hdrs = {"X-Request-Id": self.request_id, **(headers or {})}
        try:
            resp = self.session.request(
                method, url, json=json, data=data, files=files, params=params, headers=hdrs, stream=stream,
                timeout=timeout or DEFAULT_TIMEOUT,
                # explicit, because REQUESTS_CA_BUNDLE in the environment would override session.verify=False
                verify=not self.config.insecure,
            )
        except requests.exceptions.SSLError as exc:
            raise TransportError(
                f"TLS verification of {self.config.url} failed: {_short(exc)}",
                hint="pass the service's CA with --cacert PATH (or --insecure=true for a test service)",
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise TransportError(f"{method} {path}: the service did not answer in time: {_short(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(
                f"{method} {path}: cannot reach {self.config.url}: {_short(exc)}",
                hint="check --url, the network and the proxy variables",
            ) from exc
        if resp.status_code not in tuple(expected):
            reason = _reason(resp)
            resp.close()
            raise ServiceResponseError(resp.status_code, reason)
        return resp

    # -- the calls the agent makes ------------------------------------------------------------------------
    def register(self, host_id: str) -> dict[str, Any]:
        body = {"host_id": host_id}
        if self.config.agent_version:
            body["discovery_agent_version"] = self.config.agent_version
        resp = self.request(
            "POST", f"/v2/infra-envs/{self.config.infra_env_id}/hosts", json=body, expected=(201,)
        )
        return resp.json()  # type: ignore[no-any-return]

    def next_steps(self, infra_env_id: str, host_id: str, timestamp: int) -> dict[str, Any]:
        resp = self.request(
            "GET", f"/v2/infra-envs/{infra_env_id}/hosts/{host_id}/instructions", params={"timestamp": timestamp}
        )
        return resp.json()  # type: ignore[no-any-return]

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
