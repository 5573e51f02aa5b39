"""``stop-installation``: stop the installer container, as the Go agent does (``podman stop -i -t 5``).

``-i`` makes a missing container a success, so the service can send it to hosts in error or cancelled
whatever they were doing. The reply carries podman's stdout and exit code.
"""

from __future__ import annotations

from steps.base import Step, StepContext, StepResult, expect_args
from steps.install import CONTAINER_NAME

STEP = "stop-installation"


class StopInstallationStep(Step[None]):
    step_type = STEP
    default_timeout = 60.0

    def parse_args(self, args: list[str]) -> None:
        expect_args(STEP, args, 0)

    def run(self, params: None, ctx: StepContext) -> StepResult:
        result = ctx.host.run(["podman", "stop", "-i", "-t", "5", CONTAINER_NAME], timeout=45)
        return StepResult(result.stdout, result.exit_code, result.stderr.strip() if not result.ok else "")
