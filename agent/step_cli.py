"""``agent step`` (one step once, ``--list``) and ``agent completion``: the subcommands a person runs by hand.

Apart from agent.cli so that the daemon, which agent.cli also starts, never loads their code: the daemon's
memory between polls is measured (bench/daemon.py) and must not grow for them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from agent.parsers import SUBCOMMANDS, build_config, connection_flags, daemon_parser, go_style
from common.argparser import Parser
from common.errors import ConfigError


def step_parser() -> argparse.ArgumentParser:
    p = Parser(prog="agent step", description="Run one step once through the real runner and print its reply. "
               "On a terminal, long steps (write-image, disk speed check, downloads) show their progress on stderr.",
               epilog="exit status: 0 the step succeeded, 1 it failed (its error on stderr), 2 bad command line "
               "or unknown step")
    p.add_argument("name", nargs="?", help="wire step type, e.g. inventory ('agent step --list' shows them)")
    p.add_argument("args", nargs="*", help="the step's arguments: one JSON list, or each argument as is")
    p.add_argument("--list", action="store_true", help="list the steps: name, purpose, where it comes from")
    p.add_argument("--wire", action="store_true", help="print the reply exactly as it would be posted")
    connection_flags(p)
    return p


def completion_parser() -> argparse.ArgumentParser:
    p = Parser(prog="agent completion", description="Print a shell completion script for agent, generated from "
               "its parsers. bash: 'source <(agent completion bash)' or save it in "
               "/etc/bash_completion.d/agent; zsh: save it as _agent in a directory of $fpath.")
    p.add_argument("shell", choices=["bash", "zsh"])
    return p


def command_tree() -> argparse.ArgumentParser:
    """All of agent's parsers as one tree: what completion is generated from."""
    from agent import inventory_report as report
    from agent import record_host as record
    from steps import registry

    tree = daemon_parser()
    sub = tree.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, make in (("step", step_parser), ("inventory", report.parser), ("record-host", record.parser),
                       ("completion", completion_parser)):
        child = sub.add_parser(name, parents=[make()], add_help=False, help=SUBCOMMANDS[name])
        if name == "step":
            next(a for a in child._actions if a.dest == "name").choices = sorted(registry.available())
    sub.add_parser("check", help=SUBCOMMANDS["check"])  # its flags live in agent.check's main()
    return tree


def step_list() -> list[tuple[str, str, str]]:
    """(name, one-line purpose, where it comes from) of every installed step; loading each plugin to ask it."""
    from steps import registry

    rows = []
    for name, ep in sorted(registry.available().items()):
        dist = ep.dist.name if ep.dist else ep.module
        origin = "built in" if dist == "assisted-agent" else f"plugin {dist} {ep.dist.version if ep.dist else ''}"
        try:
            cls = registry.load(name)
            # the class's docstring, else that of the module the entry point names (a package: its __init__)
            doc = cls.__doc__ or sys.modules[ep.module].__doc__ or sys.modules[cls.__module__].__doc__ or ""
        except Exception as exc:  # a broken plugin is listed as such, the others still are
            doc = f"FAILS TO LOAD: {exc}"
        rows.append((name, _purpose(name, doc), origin))
    return rows


def _purpose(name: str, doc: str) -> str:
    """The first sentence of a step's docstring, without the step's own name in front."""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    for prefix in (f"The ``{name}`` step", f"``{name}``", name):
        if text.startswith(prefix):
            text = text[len(prefix):].lstrip()
            if text.startswith("("):  # "api-vip-connectivity-check (day-2): ..."
                text = text[text.find(")") + 1:].lstrip()
            text = text.removeprefix(":").lstrip()
            break
    return text.split(". ")[0].rstrip(".").replace("``", "")


def _print_step_list() -> None:
    """Columns, the purpose last: on a terminal it is cut to the terminal's width; in a pipe it is whole and
    nothing after it is padded out to the longest purpose."""
    rows = [("NAME", "FROM", "PURPOSE"), *((n, o, p) for n, p, o in step_list())]
    name_w, from_w = (max(len(r[i]) for r in rows) for i in (0, 1))
    purpose_w = max(len(r[2]) for r in rows)
    if sys.stdout.isatty():
        import shutil

        purpose_w = min(purpose_w, max(20, shutil.get_terminal_size().columns - name_w - from_w - 5))
    for name, origin, purpose in rows:
        if len(purpose) > purpose_w:
            purpose = purpose[: purpose_w - 3] + "..."
        print(f"{name:{name_w}}  {origin:{from_w}}  {purpose}".rstrip())


def unknown_step(name: str, known: Sequence[str]) -> ConfigError:
    """The error for a step name nobody provides, naming the closest one."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = "'agent step --list' shows every step"
    if close:
        hint = f"did you mean '{close[0]}'? " + hint
    return ConfigError(f"no step named '{name}'", hint=hint, code="unknown-step-type")


def run_step(argv: list[str]) -> int:
    named = [a for a in argv if not a.startswith("-")]
    if named and any(a in ("-h", "--help") for a in argv):
        from agent.step_help import step_help

        print(step_help(named[0]))
        return 0
    ns = step_parser().parse_intermixed_args(go_style(argv))
    if ns.list:
        _print_step_list()
        return 0
    if not ns.name:
        raise ConfigError("which step? give its name", hint="'agent step --list' shows every step")
    from steps import registry

    if ns.name not in registry.available() and not ns.wire:  # --wire: the reply the service would get, as is
        raise unknown_step(ns.name, sorted(registry.available()))
    cfg = build_config(ns)
    from agent.step_help import step_arguments

    args = step_arguments(ns.name, list(ns.args), cfg)
    from agent.runner import StepRunner
    from common.logs import setup_logging

    setup_logging(json_lines=cfg.log_json, level=cfg.log_level or "warning", journal=False, secrets=[cfg.token])
    cfg = cfg._replace(progress=True)  # the step's process shows how far it is on this terminal, never in a reply
    runner = StepRunner(cfg)
    try:
        reply = runner.run(ns.name, f"{ns.name}-cli", args)
    finally:
        runner.close()
    if ns.wire:
        print(json.dumps(reply.to_wire()))
    else:
        try:
            print(json.dumps(json.loads(reply.output), indent=2))
        except ValueError:
            if reply.output:
                print(reply.output)
        if reply.error:
            print(f"agent step: {ns.name}: exit code {reply.exit_code}: {reply.error}", file=sys.stderr)
    return 0 if reply.exit_code == 0 else 1


def run_completion(argv: list[str]) -> int:
    import shtab

    ns = completion_parser().parse_args(argv)
    print(shtab.complete(command_tree(), shell=ns.shell))
    return 0
