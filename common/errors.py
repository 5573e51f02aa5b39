"""The one error hierarchy of the agent and the reference service.

Every failure a person may have to act on is an :class:`AgentError`: a stable kebab-case ``code`` (for logs,
tests and tooling), a one-line ``message`` (what happened) and an optional ``hint`` (what to do about it).
The CLI prints them as ``error: <message>`` plus ``hint: <hint>``; the step runner turns them into step replies
(``exit_code`` and ``error``). This module imports nothing from the rest of the package so anything may
import it.

::

    AgentError
    ├── ConfigError                 bad command line or agent.conf (CLI exit 2)
    ├── StepError                   a step could not do its job (reply exit code, default -1)
    │   ├── InvalidStepArguments    the service sent arguments the step cannot parse
    │   ├── UnknownStepType         no plugin for the step type
    │   ├── StepTimeout             the step ran past its deadline and was killed
    │   └── UnsafeTarget            a disk or path that must not be written; refused before any write
    ├── HostAccessError             reading the host (files, commands, netlink) failed
    │   └── CommandNotFound         an external tool is not installed
    └── ServiceError                talking to the assisted-service failed
        ├── TransportError          no HTTP answer at all (DNS, refused, TLS, timeout)
        ├── MalformedAnswer         an answer that is not what the spec says (HTML, wrong types, too big)
        └── ServiceResponseError    an HTTP answer with a status the call did not expect
    ServiceRefusal                  (the reference service) an API answer other than success: status and reason
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    code: str = "agent-error"
    #: Exit code used when this error becomes a step reply.
    exit_code: int = -1

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """One line for a step reply's ``error`` field: the message, then the hint if there is one."""
        return f"{self.message}; hint: {self.hint}" if self.hint else self.message


class ConfigError(AgentError):
    code = "bad-configuration"


class StateLocked(ConfigError):
    """Another agent holds the state directory's lock: its running steps are not leftovers to reap."""

    code = "state-directory-in-use"


class StepError(AgentError):
    code = "step-failed"


class InvalidStepArguments(StepError):
    code = "invalid-step-arguments"


class UnknownStepType(StepError):
    code = "unknown-step-type"

    def __init__(self, step_type: str) -> None:
        # The exact text of the Go agent: the service and its tests key on it.
        super().__init__(f"failed to find action for step type {step_type}")


class StepTimeout(StepError):
    code = "step-timeout"
    exit_code = 124  # the convention of coreutils' timeout(1)


class UnsafeTarget(StepError):
    code = "unsafe-target"


class HostAccessError(AgentError):
    code = "host-access-failed"


class CommandNotFound(HostAccessError):
    code = "command-not-found"


class ServiceError(AgentError):
    code = "service-error"


class TransportError(ServiceError):
    code = "service-unreachable"


class MalformedAnswer(ServiceError):
    code = "service-answer-malformed"


class ServiceResponseError(ServiceError):
    code = "service-rejected-request"

    def __init__(self, status: int, reason: str, *, hint: str | None = None, from_service: bool = True) -> None:
        super().__init__(f"[{status}] {reason}", hint=hint)
        self.status = status
        self.reason = reason
        #: False when the answer was not the service's JSON error document (a web server's or proxy's page):
        #: a 404 then means a wrong path in --url, not a missing infra-env or host.
        self.from_service = from_service


class ServiceRefusal(AgentError):
    """The reference service's answer other than success: HTTP status plus the real service's reason text.

    Raised by the rules, the orchestrator and the HTTP layer alike; only the HTTP layer turns it into the spec's
    error body, so the rules stay free of HTTP.
    """

    code = "service-refusal"

    def __init__(self, status: int, reason: str, *, close: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        #: The connection is closed after the answer: what is left of the request's body is not read.
        self.close = close
