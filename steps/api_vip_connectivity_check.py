"""api-vip-connectivity-check (day-2): can this host download its worker ignition from the cluster's API?

As the Go agent (go-agent-behaviour.md 3): GET the URL with ``Accept`` for Ignition 3.2, the request's CA
(base64 PEM), bearer token and extra headers; the answer must be 2xx, non-empty and an Ignition 3.x JSON
config. What comes back is the ignition *filtered* to what the service uses (the LUKS section and the
coredns, keepalived and kubeconfig files; no systemd units), so big ignitions are not posted back. A failed
download is an answer, not a step failure: ``download_error`` in the output (a transport failure in Go's
words: steps.lib.go_errors), exit code 0.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from common.errors import InvalidStepArguments
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg
from steps.lib.bounded import ACCEPT_ENCODING, read_body

STEP = "api-vip-connectivity-check"
ACCEPT = "application/vnd.coreos.ignition+json; version=3.2.0"
#: A worker's ignition from the machine config server is a few MB; more is refused (decompressed, not held).
MAX_IGNITION_BYTES = 32 << 20
KEPT_FILES = ("/etc/kubernetes/manifests/coredns.yaml", "/etc/kubernetes/manifests/keepalived.yaml",
              "/etc/kubernetes/kubeconfig")
_VERSION = re.compile(r"^3\.\d+\.\d+(-experimental)?$")


@dataclass
class Request:
    url: str
    ca_pem: bytes | None = None
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def parse_request(raw: str) -> Request:
    value = json_arg(STEP, raw, dict)
    url = get_field(STEP, value, "url", str)
    if not re.match(r"^https?://", url):
        raise InvalidStepArguments(f"{STEP}: url {url!r} is not an http(s) URL")
    req = Request(url, token=get_field(STEP, value, "ignition_endpoint_token", str, required=False) or None)
    ca = get_field(STEP, value, "ca_certificate", str, required=False)
    if ca:
        try:
            req.ca_pem = base64.b64decode(ca, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidStepArguments(f"{STEP}: ca_certificate is not base64") from None
    for item in get_field(STEP, value, "request_headers", list, required=False, default=[]):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not isinstance(
                item.get("value", ""), str):
            raise InvalidStepArguments(f"{STEP}: request_headers items must be {{key, value}} strings")
        req.headers[item["key"]] = item.get("value", "")
    return req


def validate_ignition(body: bytes) -> dict[str, Any]:
    """The parsed config, or ValueError saying why it is not an Ignition 3.x config."""
    if not body.strip():
        raise ValueError("empty ignition")
    try:
        config = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("ignition"), dict):
        raise ValueError("not an ignition config: no ignition section")
    version = config["ignition"].get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValueError(f"unsupported ignition version {version!r}")
    for section in ("storage", "systemd", "passwd"):
        if section in config and not isinstance(config[section], dict):
            raise ValueError(f"invalid ignition: {section} must be an object")
    return config


def filter_ignition(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ignition": config["ignition"]}
    storage = config.get("storage") or {}
    kept: dict[str, Any] = {}
    files = [f for f in storage.get("files") or [] if isinstance(f, dict) and f.get("path") in KEPT_FILES]
    if files:
        kept["files"] = files
    if storage.get("luks"):
        kept["luks"] = storage["luks"]
    if kept:
        out["storage"] = kept
    return out


def fetch(req: Request, timeout: float) -> bytes:
    import requests

    headers = {"Accept": ACCEPT, **req.headers, "Accept-Encoding": ACCEPT_ENCODING}
    if req.token:
        headers["Authorization"] = f"Bearer {req.token}"
    ca_file = None
    try:
        verify: bool | str = True
        if req.ca_pem:
            fd, ca_file = tempfile.mkstemp(prefix="api-vip-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as fh:
                fh.write(req.ca_pem)
            verify = ca_file
        try:
            resp = requests.get(req.url, headers=headers, verify=verify, timeout=timeout, stream=True)
            if not 200 <= resp.status_code < 300:
                resp.close()
                raise ValueError(f"bad status code: {resp.status_code}")
            return read_body(resp, MAX_IGNITION_BYTES)
        except requests.RequestException as exc:
            from steps.lib.go_errors import http_error

            raise ValueError(http_error("GET", req.url, exc)) from None
    finally:
        if ca_file:
            os.unlink(ca_file)


class ApiVipConnectivityCheckStep(Step[Request]):
    step_type = "api-vip-connectivity-check"
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> Request:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: Request, ctx: StepContext) -> StepResult:
        try:
            body = fetch(params, timeout=max(1.0, min(60.0, ctx.remaining() - 2.0)))
            config = validate_ignition(body)
        except ValueError as exc:
            output = {"download_error": f"ignition file download failed: {exc}", "url": params.url}
            return StepResult(output, 0, "ignition download error")
        filtered = json.dumps(filter_ignition(config), separators=(",", ":"))
        return StepResult({"ignition": filtered, "is_success": True, "url": params.url})
