"""Registering the host with the service until it is taken: the one step both ``agent`` loops begin with.

The daemon (agent.daemon) then polls for steps itself; the discovery image's launcher (agent.launcher) runs the
image the answer names. Both derive the host id, send it and back off alike, so this is one object they hold.
Answers the Go agent freezes on forever (401/403/404/409) are retried here with a back-off growing to minutes, a
deliberate difference: fixing the cause on the service's side is then enough, no restart of the host needed.
"""

from __future__ import annotations  # the records are common.records': their annotations are never evaluated

from agent.config import AgentConfig
from agent.identity import derive_host_id
from agent.lifecycle import Lifecycle
from common.dry_run import ENV_HOST_ID, DrySettings
from common.errors import MalformedAnswer, ServiceResponseError, TransportError
from common.host import Host
from common.lazy_log import LazyLogger, redact_url
from common.limits import backoff
from common.records import NamedTuple
from common.service_client import BASE_PATH, ServiceClient

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from typing import Any

log = LazyLogger("agent")

#: How the registration log line names a host id taken from the dry-run environment.
DRY_HOST_ID_SOURCE = ENV_HOST_ID
#: Register answers that will not change by retrying at once; retried with a back-off capped here.
REGISTER_FATAL = {
    401: ("the service rejected the agent's token",
          "set PULL_SECRET_TOKEN to the infra-env's agent token (agent.service or /etc/assisted/agent.conf)"),
    403: ("the service refused this host",
          "if the installation finished, boot this host from its disk; else check the token's access"),
    404: ("the infra-env does not exist, or this token cannot see it",
          "check --infra-env-id against the infra-env the discovery image was made for"),
    409: ("the cluster cannot accept new hosts in its current state",
          "wait for the installation to finish or reset the cluster; an installed host must boot from disk"),
}
REGISTER_FATAL_MAX_DELAY = 300.0


class Registration(NamedTuple):
    """The service's answer to a successful registration, and which host id was sent (and where it came from)."""

    response: dict[str, Any]
    host_id: str
    how: str


class Registrar:
    def __init__(self, config: AgentConfig, client: ServiceClient, host: Host, dry: DrySettings,
                 life: Lifecycle) -> None:
        self.config, self.client, self.host, self.dry, self.life = config, client, host, dry, life

    def host_id(self) -> tuple[str, str]:
        """(host id, where it came from): the dry-run environment, --host-id, else the hardware (Go's rules)."""
        if self.dry.forced_host_id:
            return self.dry.forced_host_id, DRY_HOST_ID_SOURCE
        if self.config.host_id:
            return self.config.host_id, "--host-id"
        return derive_host_id(self.host)

    def register(self) -> Registration | None:
        """Register until it succeeds; None when stopped first."""
        fatal_attempts = 0
        notifier = self.life.notifier
        while not self.life.stop.is_set():
            host_id, how = self.host_id()
            self.client.new_request_id()
            try:
                response = self.client.register(host_id)
            except ServiceResponseError as exc:
                if exc.status == 404 and not exc.from_service:  # as Go: not the API's 404, retried every interval
                    delay = self.config.interval
                    log.warning("Error registering host: %s; hint: nothing at %s answered as the assisted-service "
                                "API (a 404 page, not the service's error): check the path in --url, to which "
                                "%s is added; retrying in %.0fs", exc, redact_url(self.client.base), BASE_PATH,
                                delay)
                    notifier.status(f"registration failed: {exc}: check the path in --url")
                elif exc.status in REGISTER_FATAL:
                    what, hint = REGISTER_FATAL[exc.status]
                    delay = backoff(self.config.interval, fatal_attempts, REGISTER_FATAL_MAX_DELAY)
                    fatal_attempts += 1
                    log.error("cannot register host %s: %s ([%d] %s); hint: %s; retrying in %.0fs",
                              host_id, what, exc.status, exc.reason, hint, delay)
                    notifier.status(f"registration refused ({exc.status}): {what}")
                else:
                    delay = self.config.interval
                    log.warning("Error registering host: %s; retrying in %.0fs", exc, delay)
                    notifier.status(f"registration failed: {exc}")
                self.life.sleep(delay)
                continue
            except (TransportError, MalformedAnswer) as exc:
                delay = self.config.interval
                log.warning("Error registering host: %s; retrying in %.0fs", exc.describe(), delay)
                notifier.status(f"service unreachable: {exc.message}")
                self.life.sleep(delay)
                continue
            # Logging is configured by the daemon once its first poll is answered, or by the first record, or by
            # what loads requests or the step machinery (common.lazy_log): nothing before that logs through the
            # logging package itself, and its import (~20 ms of CPU) no longer stands before the first poll.
            return Registration(response, host_id, how)
        return None
