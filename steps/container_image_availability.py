"""container-image-availability: can this host pull the images the installation needs, and how fast?

For each requested image, within one overall deadline (``timeout`` seconds from the start of the step, as
the Go agent): if ``podman images --quiet`` already lists it, it is a success with nothing measured;
otherwise ``podman pull`` it and report the wall time, the size (``podman image inspect --format={{.Size}}``)
and the rate (size / time, in MB/s, 10^6 bytes). An image that fails to pull, or for which no time is left,
is a failure, and any failure makes the reply exit 2 as the Go agent's. As in the Go agent, the reply's
``error`` stays empty (the service reads the per-image results); why each image failed goes to the log.
Image names are validated before anything runs and are always passed as separate arguments, never through
a shell.

``AGENT_PODMAN_ARGS``: extra global podman options, split like a shell line and inserted right after
``podman`` in every call of this step and of upgrade-agent, for hosts that need them (e.g. ``--root``,
``--storage-driver``, ``--runtime runc --cgroup-manager cgroupfs --events-backend file``). Registries are
configured the usual way (registries.conf, ``CONTAINERS_REGISTRIES_CONF``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from common import progress
from common.errors import InvalidStepArguments
from common.host import Host
from common.podman import check_reference, podman_argv, podman_error
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg

STEP = "container-image-availability"
DEFAULT_TIMEOUT = 960.0
#: Seconds ``podman images``/``inspect`` may take; only pulls get the rest of the deadline.
QUERY_TIMEOUT = 30.0
#: What the Go agent reports in dry-run mode instead of pulling.
DRY_RUN_IMAGE = {"download_rate": 100.0, "size_bytes": 400000000, "time": 10.0}
@dataclass(frozen=True)
class ImagesParams:
    images: tuple[str, ...]
    timeout: float


class ContainerImageAvailabilityStep(Step[ImagesParams]):
    step_type = STEP
    default_timeout = DEFAULT_TIMEOUT + 30

    def parse_args(self, args: list[str]) -> ImagesParams:
        expect_args(STEP, args, 1)
        request = json_arg(STEP, args[0], dict)
        images = get_field(STEP, request, "images", list)
        timeout = get_field(STEP, request, "timeout", (int, float), required=False, default=0)
        if timeout < 0:
            raise InvalidStepArguments(f"{STEP}: timeout must be a positive number of seconds, got {timeout}")
        checked = tuple(check_reference(STEP, image) for image in images)
        return ImagesParams(checked, float(timeout) or DEFAULT_TIMEOUT)

    def timeout(self, params: ImagesParams) -> float:
        return params.timeout + 30

    def run(self, params: ImagesParams, ctx: StepContext) -> StepResult:
        if ctx.config.dry_run:
            return StepResult(output={"images": [
                {**DRY_RUN_IMAGE, "name": image, "result": "success"} for image in params.images
            ]})
        deadline = time.monotonic() + min(params.timeout, max(0.0, ctx.remaining() - 5))
        installed = ctx.host.which("podman") is not None
        reports: list[dict[str, Any]] = []
        for image in params.images:
            if not installed:
                report, error = failure(image), "podman is not installed on this host"
            else:
                report, error = check_image(ctx.host, image, deadline, podman_options=ctx.config.podman_args,
                                            show=ctx.config.progress)
            reports.append(report)
            if error:
                ctx.log.warning("%s: %s: %s", STEP, image, error)
        failed = any(r["result"] == "failure" for r in reports)
        return StepResult(output={"images": reports}, exit_code=2 if failed else 0)


def failure(image: str) -> dict[str, Any]:
    return {"name": image, "result": "failure"}


def check_image(host: Host, image: str, deadline: float, *, podman_options: str = "",
                show: bool = False) -> tuple[dict[str, Any], str]:
    """(report, error text) for one image; the report's keys are in Go's order, zero values left out.
    ``podman_options`` is the ``podman_args`` setting; ``show``: progress on agent step's terminal."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return failure(image), "no time left before the step's deadline"
    listed = host.run(podman_argv("images", "--quiet", image, options=podman_options),
                      timeout=min(remaining, QUERY_TIMEOUT))
    if listed.ok and listed.stdout.strip():
        return {"name": image, "result": "success"}, ""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return failure(image), "no time left before the step's deadline"
    start = time.monotonic()
    with progress.waiting(f"pulling {image}", show=show):
        pulled = host.run(podman_argv("pull", "--quiet", image, options=podman_options), timeout=remaining)
    elapsed = time.monotonic() - start
    if pulled.timed_out:
        return failure(image), f"pull did not finish before the deadline ({elapsed:.0f} s)"
    if not pulled.ok:
        return failure(image), podman_error(pulled)
    inspected = host.run(podman_argv("image", "inspect", "--format={{.Size}}", image, options=podman_options),
                         timeout=QUERY_TIMEOUT)
    try:
        size = int(inspected.stdout.strip().splitlines()[0]) if inspected.ok else 0
    except (ValueError, IndexError):
        size = 0
    report: dict[str, Any] = {}
    if size and elapsed > 0:
        report["download_rate"] = size / elapsed / 1e6
    report.update(name=image, result="success")
    if size:
        report["size_bytes"] = size
    report["time"] = elapsed
    return report, "" if size else f"pulled, but its size could not be read: {podman_error(inspected)}"
