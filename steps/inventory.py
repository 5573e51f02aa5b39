"""The ``inventory`` step: the host's hardware and network picture, as ``models.Inventory`` JSON.

Arguments are the real service's: ``[host_id]`` plus optional ``--output-max-size=N`` (bytes the JSON may
take; beyond it the inventory is truncated and says so) and ``--disk-min-size=N`` (disks smaller than N bytes
are left out). Nothing here needs the network or the service.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.dry_run import apply_to_inventory
from common.errors import InvalidStepArguments
from inventory.collect import inventory, truncate
from inventory.options import Options
from steps.base import Step, StepContext, StepResult, is_uuid


@dataclass(frozen=True)
class InventoryParams:
    host_id: str
    output_max_size: int = 0
    disk_min_size: int = 0


class InventoryStep(Step[InventoryParams]):
    step_type = "inventory"
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> InventoryParams:
        positional = [a for a in args if not a.startswith("--")]
        if len(positional) != 1 or not is_uuid(positional[0]):
            # The Go agent's message, word for word (the service and its tests key on it).
            given = " ".join(args)
            raise InvalidStepArguments(
                f"inventory cmd accepts only 1 params in args and it should be UUID, given args [{given}]"
            )
        sizes = {"--output-max-size": 0, "--disk-min-size": 0}
        for arg in args:
            if not arg.startswith("--"):
                continue
            name, sep, value = arg.partition("=")
            if name not in sizes or not sep:
                raise InvalidStepArguments(
                    f"inventory: unknown argument {arg!r}; expected --output-max-size=N or --disk-min-size=N"
                )
            if not (value.isascii() and value.isdigit()):  # "²".isdigit() is true, int("²") raises
                raise InvalidStepArguments(f"inventory: {name} must be a non-negative integer, got {value!r}")
            sizes[name] = int(value)
        return InventoryParams(positional[0], sizes["--output-max-size"], sizes["--disk-min-size"])

    def run(self, params: InventoryParams, ctx: StepContext) -> StepResult:
        inv, problems = inventory(ctx.host, Options(disk_min_size=params.disk_min_size))
        for problem in problems:
            ctx.log.warning("inventory: part left out: %s", problem)
        # A dry-run host (one of many agents on one machine) reports the hostname, MAC and address it was given.
        inv = apply_to_inventory(inv, ctx.config.dry)
        return StepResult(truncate(inv, params.output_max_size))
