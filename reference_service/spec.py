"""The wire contract: the real assisted-service's OpenAPI 2 spec, and validation of JSON against its models.

The bundled ``swagger.yaml`` is a byte-for-byte copy of the spec the real service is generated from (a test
keeps it equal to ``../shared/spec``). Its ``definitions`` are JSON Schema (draft 4) with two Go-isms we honour:
``x-nullable: true`` means the field may be null, and a Go slice that is nil serialises as ``null`` (the real
agent sends ``"not_eligible_reasons": null``), so arrays accept null too. Nothing else is relaxed: types,
enums, required fields and formats (uuid, ipv4, ipv6, date-time) are checked.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import os
import re
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

BUNDLED_SPEC = Path(__file__).with_name("swagger.yaml")
#: This project's own step types (write-image, reboot), documented next to the spec: extra ``definitions``
#: and ``step_types`` appended to the ``step-type`` enum. See docs/extensions.md.
EXTENSIONS = Path(__file__).with_name("extensions.yaml")

#: The model of each step type's output, as the real service parses it (``filterReplyByType``).
STEP_OUTPUT_MODELS: dict[str, str] = {
    "inventory": "inventory",
    "connectivity-check": "connectivity-report",
    "free-network-addresses": "free_networks_addresses",
    "dhcp-lease-allocate": "dhcp_allocation_response",
    "ntp-synchronizer": "ntp_synchronization_response",
    "domain-resolution": "domain_resolution_response",
    "installation-disk-speed-check": "disk_speed_check_response",
    "container-image-availability": "container_image_availability_response",
    "api-vip-connectivity-check": "api_vip_connectivity_response",
    "tang-connectivity-check": "tang_connectivity_response",
    "verify-vips": "verify_vips_response",
    "upgrade-agent": "upgrade_agent_response",
}

#: Request models of the step arguments the service sends (args[0] of each step).
STEP_REQUEST_MODELS: dict[str, str] = {
    "connectivity-check": "connectivity-check-params",
    "free-network-addresses": "free_addresses_request",
    "dhcp-lease-allocate": "dhcp_allocation_request",
    "ntp-synchronizer": "ntp_synchronization_request",
    "domain-resolution": "domain_resolution_request",
    "installation-disk-speed-check": "disk_speed_check_request",
    "container-image-availability": "container_image_availability_request",
    "api-vip-connectivity-check": "api_vip_connectivity_request",
    "tang-connectivity-check": "tang_connectivity_request",
    "verify-vips": "verify_vips_request",
    "upgrade-agent": "upgrade_agent_request",
    "install": "install_cmd_request",
    "logs-gather": "logs_gather_cmd_request",
    "download-boot-artifacts": "download_boot_artifacts_request",
    "reboot-for-reclaim": "reboot_for_reclaim_request",
}


def spec_path() -> Path:
    """The spec to validate against: ``$ASSISTED_SPEC`` if set, else the bundled copy."""
    override = os.environ.get("ASSISTED_SPEC")
    return Path(override) if override else BUNDLED_SPEC


@lru_cache(maxsize=4)
def load_spec(path: str | None = None) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path or spec_path(), encoding="utf-8") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=loader)
    if EXTENSIONS.exists():
        with open(EXTENSIONS, encoding="utf-8") as fh:
            ext = yaml.load(fh, Loader=loader) or {}
        spec["definitions"].update(ext.get("definitions", {}))
        spec["definitions"]["step-type"]["enum"].extend(ext.get("step_types", []))
    return spec


def _relax(node: Any) -> Any:
    """Apply the Go null semantics described in the module docstring, recursively."""
    if isinstance(node, list):
        return [_relax(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _relax(v) for k, v in node.items()}
    nullable = out.pop("x-nullable", None) is True or out.get("type") == "array"
    if nullable and "$ref" not in out and "type" in out:
        t = out["type"]
        out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    elif nullable and "$ref" in out:
        return {"anyOf": [{"type": "null"}, out]}
    return out


@lru_cache(maxsize=4)
def _validators(path: str | None = None) -> tuple[Any, dict[str, Any]]:
    import jsonschema

    definitions = _relax(copy.deepcopy(load_spec(path)["definitions"]))
    checker = jsonschema.FormatChecker()

    @checker.checks("uuid", raises=ValueError)
    def _uuid(value: object) -> bool:
        if isinstance(value, str):
            uuid.UUID(value)
        return True

    @checker.checks("ipv4", raises=ValueError)
    def _ipv4(value: object) -> bool:
        if isinstance(value, str):
            ipaddress.IPv4Address(value)
        return True

    @checker.checks("ipv6", raises=ValueError)
    def _ipv6(value: object) -> bool:
        if isinstance(value, str):
            ipaddress.IPv6Address(value)
        return True

    return checker, {"definitions": definitions}


#: The canonical spellings of formats checked on every entry of a big document (a 1,000-peer connectivity
#: report has 1,000 host ids): what the expression matches, the format's checker accepts too, so only other
#: spellings (braces, no dashes) pay for uuid.UUID. It took a third of that report's check. The same for
#: dotted-quad IPv4 addresses (no leading zeros, as ipaddress wants): a free-network-addresses reply of a
#: 300-host /22 lists 700 of them, whose checks by ipaddress took 2.7 ms of the event loop per reply.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL = {"uuid": re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
              "ipv4": re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")}


def _canonical_or(canonical: re.Pattern[str], slow: Callable[[Any], bool], value: Any) -> bool:
    return (isinstance(value, str) and canonical.fullmatch(value) is not None) or slow(value)


@lru_cache(maxsize=128)
def _fast(definition: str, path: str | None = None) -> Callable[[Any], bool] | None:
    """Whether a document is valid against ``definition``, by jsonschema-rs (the schema compiled in Rust)
    with jsonschema's own format checks: it only accepts. A valid document (nearly every one) is accepted
    far faster than jsonschema walks it (a 1,000-peer connectivity report: 0.7 ms, against 5.4 ms for
    fastjsonschema, which this replaced, and about 110 ms for jsonschema; docs/scale.md); one it refuses is
    handed to jsonschema, whose messages say every way it is wrong. None when jsonschema-rs is not installed."""
    try:
        import jsonschema_rs
    except ModuleNotFoundError:
        return None
    checker, root = _validators(path)
    formats: dict[str, Callable[..., bool]] = {
        name: functools.partial(checker.conforms, format=name) for name in checker.checkers}
    for name, canonical in _CANONICAL.items():  # accepted by a regular expression, else as before
        formats[name] = functools.partial(_canonical_or, canonical, formats[name])
    schema = {"$ref": f"#/definitions/{definition}", "definitions": root["definitions"]}
    validator = jsonschema_rs.Draft4Validator(schema, validate_formats=True, formats=formats)
    return validator.is_valid


def errors(definition: str, instance: Any, *, path: str | None = None) -> list[str]:
    """Every way ``instance`` fails the spec's ``definition``, as readable lines; empty when it is valid."""
    import jsonschema

    checker, root = _validators(path)
    if definition not in root["definitions"]:
        raise KeyError(f"the spec has no definition {definition!r}")
    fast = _fast(definition, path)
    if fast is not None:
        try:
            if fast(instance):
                return []
        except (ValueError, TypeError, OverflowError):  # a value it cannot take: jsonschema judges it
            pass
    schema = {"$ref": f"#/definitions/{definition}", "definitions": root["definitions"]}
    validator = jsonschema.Draft4Validator(schema, format_checker=checker)
    found = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        found.append(f"{definition}: {where}: {err.message}")
    return found


def validate(definition: str, instance: Any, *, path: str | None = None) -> None:
    """Raise ValueError listing every violation when ``instance`` does not match ``definition``."""
    problems = errors(definition, instance, path=path)
    if problems:
        raise ValueError("; ".join(problems[:10]))
