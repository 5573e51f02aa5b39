"""upgrade-agent: pull the agent image the service wants, so the agent can restart into it.

The service sends this instead of every other step while the host's ``discovery_agent_version`` differs from
its own agent image. As the Go agent, we ``podman pull`` the image and report ``success`` or ``failure``,
always with exit code 0 (a failure is data for the service, not a broken step). After a successful reply is
posted the daemon exits: with the stock discovery unit the host's agent registers again and runs the image the
service now names (docs/image.md); with our own units systemd (``Restart=always``) starts it again on the new
image. Podman options come from ``AGENT_PODMAN_ARGS`` as for container-image-availability.

One difference from the Go agent: a pull that fails while the image is already in the host's storage is a
success (podman's ``--pull=newer`` rule: pull errors are suppressed when a local image exists). The image
the runner would then start (``podman run`` uses the local one) is the one asked for, so reporting failure
would only make the service ask again on every poll, forever: a host with the new image preloaded and no
route to its registry (a disconnected site, an image tagged locally, ``podman load``) could never upgrade.
A reachable registry is still asked first, so a moved tag is refreshed as in Go.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.podman import check_reference, podman_argv, podman_error
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg
from steps.container_image_availability import QUERY_TIMEOUT

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
            budget = max(1.0, ctx.remaining() - 5 - QUERY_TIMEOUT)  # leaves time to look in local storage
            pulled = ctx.host.run(podman_argv("pull", "--quiet", image, options=ctx.config.podman_args), timeout=budget)
            if pulled.ok:
                return StepResult(output={"agent_image": image, "result": "success"})
            error = "pull timed out" if pulled.timed_out else podman_error(pulled)
            exists = podman_argv("image", "exists", image, options=ctx.config.podman_args)
            if ctx.host.run(exists, timeout=QUERY_TIMEOUT).ok:
                ctx.log.info("%s: pulling %s failed (%s); the image is already in local storage", STEP, image,
                             error)
                return StepResult(output={"agent_image": image, "result": "success"})
        return StepResult(output={"agent_image": image, "result": "failure"},
                          error=f"failed to pull agent image {image}: {error}")
