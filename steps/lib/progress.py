"""Installation progress as the assisted-installer reports it: ``PUT .../hosts/{id}/progress``.

A progress update that the service refuses (409 for a stage it does not expect) or that cannot be delivered
must not abort a disk write half-way, so failures are logged and remembered, never raised.
"""

from __future__ import annotations

from common.errors import ServiceError
from steps.base import StepContext

STARTING = "Starting installation"
INSTALLING = "Installing"
WRITING = "Writing image to disk"
REBOOTING = "Rebooting"
FAILED = "Failed"
#: The installer reports ``Writing image to disk`` again only after this many more percent (and at 100%).
PERCENT_STEP = 5


class ProgressReporter:
    def __init__(self, ctx: StepContext, infra_env_id: str | None, host_id: str | None) -> None:
        self.ctx = ctx
        self.infra_env_id = infra_env_id
        self.host_id = host_id
        self.last_percent = -PERCENT_STEP
        #: (stage, info) of every update the service accepted, for the step's output and tests.
        self.sent: list[tuple[str, str]] = []
        self.errors: list[str] = []

    @property
    def enabled(self) -> bool:
        return bool(self.infra_env_id and self.host_id and self.ctx.config.url)

    def stage(self, stage: str, info: str = "") -> bool:
        if not self.enabled:
            return False
        assert self.infra_env_id is not None and self.host_id is not None
        try:
            self.ctx.client.update_progress(self.infra_env_id, self.host_id, stage, info)
        except ServiceError as exc:
            self.ctx.log.warning("progress %r (%s) not accepted: %s", stage, info, exc)
            self.errors.append(f"{stage}: {exc}")
            return False
        self.sent.append((stage, info))
        return True

    def percent(self, value: int) -> None:
        """``Writing image to disk`` with "NN%", at most once per PERCENT_STEP and always at 100%."""
        value = max(0, min(100, value))
        if value >= self.last_percent + PERCENT_STEP or (value == 100 and self.last_percent != 100):
            self.last_percent = value
            self.stage(WRITING, f"{value}%")
