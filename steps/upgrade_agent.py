"""upgrade-agent: pull the agent image the service wants, so the agent can restart into it.

The service sends this instead of every other step while the host's ``discovery_agent_version`` differs from
its own agent image. As the Go agent, we ``podman pull`` the image and report ``success`` or ``failure``,
always with exit code 0 (a failure is data for the service, not a broken step). After a successful reply is
posted the daemon exits, and systemd (``Restart=always`` in agent.service) starts it again on the new image.
Podman options come from ``AGENT_PODMAN_ARGS`` as for container-image-availability.
"""

from __future__ import annotations

from dataclasses import dataclass

from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg
from steps.container_image_availability import check_reference, podman_argv, podman_error

STEP = "upgrade-agent"


@dataclass(frozen=True)
class UpgradeParams:
    agent_image: str


class UpgradeAgentStep(Step[UpgradeParams]):
    step_type = STEP
    default_timeout = 900.0

    def parse_args(self, args: list[str]) -> UpgradeParams:
        expect_args(STEP, args, 1)
        request = json_arg(STEP, args[0], dict)
        return UpgradeParams(check_reference(STEP, get_field(STEP, request, "agent_image", str)))

    def run(self, params: UpgradeParams, ctx: StepContext) -> StepResult:
        image = params.agent_image
        if ctx.config.dry_run:
            return StepResult(output={"agent_image": image, "result": "success"})
        if ctx.host.which("podman") is None:
            error = "podman is not installed on this host"
        else:
            budget = max(1.0, ctx.remaining() - 5)
            pulled = ctx.host.run(podman_argv("pull", "--quiet", image), timeout=budget)
            if pulled.ok:
                return StepResult(output={"agent_image": image, "result": "success"})
            error = "pull timed out" if pulled.timed_out else podman_error(pulled)
        return StepResult(output={"agent_image": image, "result": "failure"},
                          error=f"failed to pull agent image {image}: {error}")
