"""The agent's command-line parsers and how their flags become settings, shared by ``agent`` (agent.cli) and its
hand-run subcommands (agent.step_cli), so that neither imports the other.

Flags are accepted Go-style (``-flag``, ``--flag=value``) because the discovery image passes them so.
"""

from __future__ import annotations

import sys

from agent import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

    from agent.config import AgentConfig

# argparse is imported by the parsers that need it, not here: `agent inventory` parses its two flags by hand.

SUBCOMMANDS = {
    "step": "run one step once through the real runner and print its reply; --list shows the steps",
    "inventory": "this host's inventory: the JSON the service gets, or a table for a person",
    "check": "would this host pass the service's hardware validations? (exit 0 when it would)",
    "record-host": "record this host as a fixture tree the inventory can be replayed on",
    "completion": "print a bash or zsh completion script",
}
DAEMON_EPILOG = """subcommands (see 'agent SUBCOMMAND --help'):
{subcommands}

exit status:
  0  done (the daemon: the service said exit, or SIGTERM after the steps finished)
  1  failure at run time (the service unreachable for good, a step failed in 'agent step', ...)
  2  bad command line or agent.conf; the message says which flag and the hint what to do

environment: (a flag wins over agent.conf, agent.conf over the environment; docs/settings.md has them all)
{environment}
  HTTP(S)_PROXY, NO_PROXY  honoured by every request to the service
  AGENT_TRACEBACK=1  show the traceback of an unexpected error instead of one line

files:
  {conf}  KEY=VALUE settings (URL, INFRA_ENV_ID, ...), as systemd's EnvironmentFile=

examples:
  agent --url http://127.0.0.1:8090 --infra-env-id ID      register and run until the service says exit
  agent step --list                                        every step, what it does, where it comes from
  agent step inventory                                     one step's reply, as the service would get it
  agent inventory --format table                           this host, for a person
  source <(agent completion bash)                          tab completion in this shell
"""


def go_style(argv: Sequence[str]) -> list[str]:
    """-flag and -flag=value (Go's flag package) become --flag forms argparse understands."""
    from agent.settings import TABLE

    long_flags = {s.flag[2:] for s in TABLE if s.flag} | {"help", "version"}
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            name = arg[1:].split("=", 1)[0]
            if name in long_flags:
                arg = "-" + arg
        out.append(arg)
    return out


def connection_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command line of the agent takes (agent.settings.TABLE's ``all``)."""
    from agent.settings import add_flags

    add_flags(parser, "all")


def environment_help() -> str:
    """The environment variables of agent.settings.TABLE, for --help's epilog."""
    from agent.settings import TABLE

    return "\n".join(f"  {s.env:28} " + (f"as {s.flag}" if s.flag else s.help) for s in TABLE if s.env)


def not_here() -> tuple[str, ...]:
    """Subcommands the self-contained host binary (PyInstaller, sys.frozen) does not carry: it has no step code,
    which runs in the agent image; its --help does not offer them and they say where to run them instead."""
    return ("step",) if getattr(sys, "frozen", False) else ()


def daemon_parser() -> argparse.ArgumentParser:
    import argparse

    from agent.config import DEFAULT_CONF
    from common.argparser import Parser

    shown = {k: v for k, v in SUBCOMMANDS.items() if k not in not_here()}
    subcommands = "\n".join(f"  {name:12} {text}" for name, text in shown.items())
    p = Parser(prog="agent", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="OpenShift Assisted Installer agent (Python), a drop-in replacement for the Go agent. "
               "Without a subcommand it runs the daemon: register the host, then fetch, run and reply to steps.",
               epilog="\n".join(line for line in DAEMON_EPILOG.format(
                   subcommands=subcommands, conf=DEFAULT_CONF, environment=environment_help()).split("\n")
                                 if not any(f"agent {k} " in line for k in not_here())))
    from agent.settings import add_flags

    add_flags(p, "daemon")
    p.add_argument("--version", action="version", version=f"agent {__version__}")
    return p


def quick_daemon_args(argv: Sequence[str]) -> dict[str, str | None] | None:
    """The daemon's flags as argparse would parse them (dest -> raw value, None when not given), for a command
    line made only of the daemon's flags in their plain forms (``--flag value``, ``--flag=value``, a bare boolean
    flag); None for anything else, which argparse then parses, with its messages.

    Why: the daemon's command line is parsed at every start, and argparse (its import, gettext, a formatter per
    flag) was a tenth of the CPU before the first register (issue 29); the discovery image's command line is
    always plain. tests/unit/agent/test_settings.py checks that both parsers agree."""
    from agent.settings import flag_settings

    settings = {s.flag: s for s in flag_settings("daemon")}
    values: dict[str, str | None] = {s.dest: None for s in settings.values()}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        setting = settings.get(name)
        if setting is None:  # a positional, an abbreviation, --help, --version: argparse's
            return None
        if not eq:
            if setting.type is bool:
                value = "true"
            else:
                value = next(args, "-")
                if value.startswith("-"):  # a missing value, or one argparse may take for a flag
                    return None
        if setting.choices and value not in setting.choices:
            return None
        values[setting.dest] = value
    return values


def build_config(ns: argparse.Namespace | Mapping[str, str | None], *,
                 env: Mapping[str, str] | None = None) -> AgentConfig:
    """The settings, resolved once (agent.settings.resolve: flags, agent.conf, the environment, defaults)."""
    from agent.settings import resolve

    return resolve(ns, env)


def plain_flags(argv: Sequence[str], values: dict[str, str],
                choices: Mapping[str, tuple[str, ...]]) -> dict[str, str] | None:
    """``values`` (flag -> default) updated from a command line of plain ``--flag X``/``--flag=X``; None for
    anything else (``--help``, an abbreviation, a bad choice, a mistake): argparse then decides, and its
    answer and messages stay the reference. argparse and what it imports (gettext, locale, shutil, bz2, lzma)
    cost several ms of CPU at every start of ``agent inventory`` and ``agent check`` (issue 29)."""
    values = dict(values)
    i = 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        if flag not in values:
            return None
        if not eq:
            i += 1
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
        if flag in choices and value not in choices[flag]:
            return None
        values[flag] = value
        i += 1
    return values
