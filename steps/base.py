"""The contract every step plugin fulfils.

A step declares its wire ``step_type``, turns the service's string arguments into typed parameters (raising
:class:`~common.errors.InvalidStepArguments` for anything malformed, before any work is done), says how long it
may run, and returns a :class:`StepResult` whose ``output`` validates against the spec model of its step type.
Steps run in a child process of the daemon (see ``agent.runner``), so a step may block, crash or import heavy
libraries without hurting the daemon; at its deadline the child and everything it started are killed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from common.errors import InvalidStepArguments
from common.host import Host
from common.service_settings import ServiceSettings

if TYPE_CHECKING:
    from common.dry_run import DrySettings
    from common.service_client import ServiceClient


class StepSettings(ServiceSettings, Protocol):
    """The agent's settings a step may read (agent.config.AgentConfig has them; steps never import agent). They
    come in the step process's request; a step reads no setting from the environment."""

    @property
    def host_id(self) -> str | None: ...
    @property
    def host_root(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def dry(self) -> DrySettings: ...
    @property
    def state_dir(self) -> str: ...
    @property
    def progress(self) -> bool: ...
    @property
    def chronyc_socket(self) -> str: ...
    @property
    def chronyc_timeout(self) -> float: ...
    @property
    def disk_speed_bytes(self) -> int: ...
    @property
    def virtual_nics(self) -> bool: ...
    @property
    def podman_args(self) -> str: ...
    @property
    def reboot_dry_run(self) -> bool: ...
    @property
    def reboot_marker(self) -> str: ...

P = TypeVar("P")


@dataclass
class StepResult:
    """What a step reports. ``output`` is JSON-encoded compactly unless it is already a string."""

    output: Any = None
    exit_code: int = 0
    error: str = ""

    def encoded_output(self) -> str:
        if self.output is None:
            return ""
        if isinstance(self.output, str):
            return self.output
        return json.dumps(self.output, separators=(",", ":"))


@dataclass
class StepContext:
    """What a running step may use: the host seam, the agent's configuration, a service client, its deadline."""

    host: Host
    config: StepSettings
    step_id: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("agent.step"))
    _client: ServiceClient | None = None
    _client_factory: Callable[[], ServiceClient] | None = None

    def remaining(self) -> float:
        """Seconds left before the runner kills this step; plan waits and sub-timeouts within it."""
        return max(0.0, self.deadline - time.monotonic())

    @property
    def client(self) -> ServiceClient:
        """A client of the assisted-service, with the agent's TLS settings and token (for progress, uploads)."""
        if self._client is None:
            if self._client_factory is not None:
                self._client = self._client_factory()
            else:
                from common.service_client import ServiceClient

                self._client = ServiceClient(self.config)
        return self._client


class Step(Generic[P]):
    """Base class of step plugins. Subclasses set the class attributes and implement ``parse_args``/``run``."""

    #: The wire name, e.g. ``"connectivity-check"``; must equal the entry-point name.
    step_type: ClassVar[str]
    #: Seconds the step may run unless ``timeout()`` says otherwise for given parameters.
    default_timeout: ClassVar[float] = 300.0

    def parse_args(self, args: list[str]) -> P:
        """Validate the service's arguments; raise InvalidStepArguments with a message a person can act on."""
        raise NotImplementedError

    def timeout(self, params: P) -> float:
        """The deadline for these parameters (e.g. the disk speed check takes it from its arguments)."""
        return self.default_timeout

    def run(self, params: P, ctx: StepContext) -> StepResult:
        raise NotImplementedError


# -- argument helpers shared by the steps --------------------------------------------------------------------


def expect_args(step_type: str, args: list[str], count: int) -> None:
    """The argument count, checked with the Go agent's wording (``%s cmd accepts only %d params ...``)."""
    if len(args) != count:
        raise InvalidStepArguments(
            f"{step_type} cmd accepts only {count} params in args, given args [{' '.join(args)}]"
        )


def json_arg(step_type: str, raw: str, expected: type[Any] = dict) -> Any:
    """Decode one JSON argument and check its top-level type."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidStepArguments(f"{step_type}: argument is not valid JSON ({exc}): {raw[:200]!r}") from exc
    if not isinstance(value, expected):
        raise InvalidStepArguments(
            f"{step_type}: argument must be a JSON {_type_name(expected)}, got {_type_name(type(value))}"
        )
    return value


def get_field(
    step_type: str, obj: dict[str, Any], name: str, expected: type[Any] | tuple[type[Any], ...], *,
    required: bool = True, default: Any = None,
) -> Any:
    """One field of a JSON object argument, type-checked (bool is not accepted where a number is expected)."""
    if name not in obj or obj[name] is None:
        if required:
            raise InvalidStepArguments(f"{step_type}: missing required field {name!r}")
        return default
    value = obj[name]
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        wanted = " or ".join(_type_name(t) for t in types)
        raise InvalidStepArguments(f"{step_type}: field {name!r} must be a {wanted}, got {_type_name(type(value))}")
    return value


def uuid_field(step_type: str, obj: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """A field that must hold a UUID (host, cluster and infra-env ids), or None when optional and absent."""
    value = get_field(step_type, obj, name, str, required=required)
    if value is not None and not is_uuid(value):
        raise InvalidStepArguments(f"{step_type}: {name} must be a UUID, got {value!r}")
    return value  # type: ignore[no-any-return]


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def _type_name(t: type[Any]) -> str:
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        t, t.__name__
    )
