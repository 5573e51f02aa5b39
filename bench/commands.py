"""CPU of the agent's one-shot commands beside the Go agent's inventory, in the same run.

    sudo .venv/bin/python bench/commands.py [--go-agent NAME=PATH ...] [--runs 15] [--agent PATH]

Issue 29 item 3: ``agent inventory --format table`` and ``agent check`` within 1.2 times the CPU of the Go
agent's inventory. Each round runs, one after the other so the machine's load hits all alike, every Go
inventory given (``--go-agent`` as in bench/daemon.py, or ``GO_AGENT_BIN``; run by the name ``inventory``, as
its image does), then ``agent inventory`` (JSON), ``agent inventory --format table`` and ``agent check``. CPU is
user + system time of the process and everything it started (``wait4``), the median over the rounds; the
ratio is ours over each Go build's. The agent's packages are compiled to bytecode first, and run without the
service extra's modules (``agent_only_env``), as installed; ``agent check`` is measured with them too.

The Go inventory reads the host under /host (its container mounts it there), so the whole run happens in a
mount namespace of its own with / bound at /host (an empty directory outside it, removed at the end if made
here). Needs root. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
INSIDE = "BENCH_COMMANDS_INSIDE"
PACKAGES = ("agent", "common", "inventory", "rules", "steps")
#: What the agent's one-shot commands would import from the service extra when it is installed.
SERVICE_EXTRA = ("orjson",)


def compile_packages() -> None:
    """Bytecode for the agent's packages, as an installed system has it. Without it (a fresh clone, or
    PYTHONDONTWRITEBYTECODE set, as on this machine's shells) every start compiles each module it imports:
    ~0.08 s of CPU more for ``agent check``, which measured the compiler, not the agent."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / p) for p in PACKAGES)], check=True,
                   stdout=subprocess.DEVNULL)


def cpu(argv: list[str], env: dict[str, str] | None = None) -> float:
    """CPU seconds of one run, its children included."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # agent check: 1 when the host would not pass
        raise SystemExit(f"{' '.join(argv)} failed with {code}")
    return usage.ru_utime + usage.ru_stime


def measure(commands: dict[str, tuple[list[str], dict[str, str] | None]], runs: int) -> dict[str, float]:
    for argv, env in commands.values():  # warm-up: page cache
        cpu(argv, env)
    seen: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            seen[name].append(cpu(argv, env))
    return {name: statistics.median(values) for name, values in seen.items()}


def report(figures: dict[str, float], go: list[str], ours: list[str]) -> None:
    print(f"{'CPU s (median)':30}{'':>8}" + "".join(f"{'/ ' + g:>12}" for g in go))
    for name in go:
        print(f"{'Go ' + name + ' inventory':30}{figures[name]:8.3f}")
    for name in ours:
        print(f"{name:30}{figures[name]:8.3f}" + "".join(f"{figures[name] / figures[g]:12.2f}" for g in go))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared: ratios of one "
          f"run, not absolute times, are what to compare)")


def agent_only_env(work: Path) -> dict[str, str]:
    """The environment of the agent as pip installs it without the service extra: this development venv has
    orjson (common.json_codec uses it when present, so ``agent check`` imports it, with uuid and platform:
    ~0.01 s); a module of that name on PYTHONPATH that refuses to import makes it absent, as it is there."""
    blocked = work / "agent-only"
    blocked.mkdir()
    for name in SERVICE_EXTRA:
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name}: the service extra, not the agent')\n")
    return {**os.environ, "PYTHONPATH": str(blocked)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--go-agent", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--agent", default=str(BIN / "agent"), help="our agent's executable (default: this venv's)")
    ns = p.parse_args()
    if not os.environ.get(INSIDE):
        made = not Path("/host").exists()
        Path("/host").mkdir(exist_ok=True)
        try:
            return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   'mount --rbind / /host && exec "$@"', "sh", sys.executable, *sys.argv],
                                  env={**os.environ, INSIDE: "1"}, check=False).returncode
        finally:
            if made:
                Path("/host").rmdir()
    compile_packages()
    specs = ns.go_agent or ([f"go={os.environ['GO_AGENT_BIN']}"] if os.environ.get("GO_AGENT_BIN") else [])
    work = Path(tempfile.mkdtemp(prefix="bench-commands-"))
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        (work / name).mkdir()
        (work / name / "inventory").symlink_to(Path(path).absolute())  # the Go binary acts by its argv[0]
        commands[name] = ([str(work / name / "inventory")], None)
    installed = agent_only_env(work)
    ours = {"agent inventory": ([ns.agent, "inventory"], installed),
            "agent inventory --format table": ([ns.agent, "inventory", "--format", "table"], installed),
            "agent check": ([ns.agent, "check"], installed),
            "agent check, service extra here": ([ns.agent, "check"], None)}
    commands.update(ours)
    figures = measure(commands, ns.runs)
    if not specs:
        print("Go agent: not available (--go-agent NAME=PATH or GO_AGENT_BIN)")
    report(figures, [s.split("=", 1)[0] for s in specs], list(ours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
