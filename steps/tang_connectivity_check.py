"""tang-connectivity-check: do the tang servers of disk encryption answer with their advertisement?

As the Go agent: ``tang_servers`` is itself a JSON string listing ``{url, thumbprint}``; each server gets
``GET <url>/adv/<thumbprint>`` and must answer 200 with a non-empty JWS JSON body. All servers answer: the
advertisements are reported (payload, signatures, full URL). Any failure: ``tang_server_response`` null, the
errors (multierror text, a transport failure in Go's words: steps.lib.go_errors) in the reply's
error, exit code -1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from common.errors import InvalidStepArguments
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg
from steps.lib.bounded import ACCEPT_ENCODING, BodyTooLarge, read_body

STEP = "tang-connectivity-check"
#: A tang advertisement is a JWS of a few keys: under 2 KB; more is refused (decompressed, not held).
MAX_ADVERTISEMENT_BYTES = 64 << 10


@dataclass(frozen=True)
class TangServer:
    url: str
    thumbprint: str


def parse_request(raw: str) -> list[TangServer]:
    value = json_arg(STEP, raw, dict)
    servers_raw = get_field(STEP, value, "tang_servers", str)
    servers = json_arg(STEP, servers_raw, list)
    out = []
    for item in servers:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise InvalidStepArguments(f"{STEP}: every tang server needs a url string, got {item!r}")
        if not re.match(r"^https?://", item["url"]):
            raise InvalidStepArguments(f"{STEP}: tang url {item['url']!r} is not an http(s) URL")
        thumbprint = item.get("thumbprint", "")
        if not isinstance(thumbprint, str):
            raise InvalidStepArguments(f"{STEP}: thumbprint of {item['url']} must be a string")
        out.append(TangServer(item["url"], thumbprint))
    return out


def multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's text, which the service shows as is."""
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} {noun} occurred:\n" + "".join(f"\t* {e}\n" for e in errors) + "\n"


def advertisement(server: TangServer, timeout: float) -> dict[str, Any]:
    import requests

    from steps.lib.go_errors import http_error

    url = f"{server.url.rstrip('/')}/adv/{server.thumbprint}"
    try:
        resp = requests.get(url, timeout=timeout, stream=True, headers={"Accept-Encoding": ACCEPT_ENCODING})
        if resp.status_code != 200:
            resp.close()
            raise ValueError(f"{url}: unexpected status {resp.status_code}")
        content = read_body(resp, MAX_ADVERTISEMENT_BYTES)
    except requests.RequestException as exc:
        raise ValueError(http_error("GET", url, exc)) from None
    except BodyTooLarge as exc:
        raise ValueError(f"{url}: {exc}") from None
    if not content.strip():
        raise ValueError(f"{url}: empty response")
    try:
        jws = json.loads(content)
    except ValueError as exc:
        raise ValueError(f"{url}: response is not JSON: {exc}") from None
    if not isinstance(jws, dict):
        raise ValueError(f"{url}: response is not a JWS object")
    if "signatures" in jws and isinstance(jws["signatures"], list):
        sigs = [{"protected": s.get("protected"), "signature": s.get("signature")}
                for s in jws["signatures"] if isinstance(s, dict)]
    else:
        sigs = [{"protected": jws.get("protected"), "signature": jws.get("signature")}]
    sigs = [{k: v for k, v in s.items() if isinstance(v, str) and v} for s in sigs]
    entry: dict[str, Any] = {"signatures": sigs, "tang_url": url}
    if isinstance(jws.get("payload"), str) and jws["payload"]:
        entry["payload"] = jws["payload"]
    return entry


class TangConnectivityCheckStep(Step[list[TangServer]]):
    step_type = "tang-connectivity-check"
    default_timeout = 60.0

    def parse_args(self, args: list[str]) -> list[TangServer]:
        expect_args(STEP, args, 1)
        return parse_request(args[0])

    def run(self, params: list[TangServer], ctx: StepContext) -> StepResult:
        responses, errors = [], []
        for server in params:
            try:
                responses.append(advertisement(server, max(1.0, min(30.0, ctx.remaining() - 1.0))))
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            return StepResult({"tang_server_response": None}, -1, multierror(errors))
        return StepResult({"is_success": True, "tang_server_response": responses})
