"""``agent``: the daemon (the Go agent's command line), plus developer and hardware-testing subcommands.

    agent --url URL --infra-env-id ID [--agent-version V] [--interval S] [--cacert PATH]
          [--insecure[=BOOL]] [--host-id ID] [--log-json] ...      run the daemon (what agent.service runs)
    agent step NAME [ARGS...] | agent step --list                  run one step once and print its reply
    agent inventory [--format json|table]                          this host's inventory, as the service gets it
    agent record-host DIR                                          record this host as a fixture tree
    agent check [--role R] [--profile P] [--format table|json]     would this host pass the hardware validations?
    agent completion bash|zsh                                      shell completion, generated from the parsers

Flags are accepted Go-style (``-flag``, ``--flag=value``) because the discovery image passes them so. A bad
command line is one line on stderr, a hint and exit status 2; a failure at run time exits 1 (common.usage).
"""

from __future__ import annotations

import sys

from agent.parsers import SUBCOMMANDS, build_config, daemon_parser, go_style, not_here, quick_daemon_args
from common.errors import ConfigError
from common.usage import run_main

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from collections.abc import Sequence

def _run_daemon(argv: list[str], role: str = "agent") -> int:
    args = go_style(argv)
    given = quick_daemon_args(args)
    cfg = build_config(given if given is not None else daemon_parser().parse_args(args))
    cfg.validate_for_daemon()
    from common.dry_run import validate

    dry = cfg.dry
    if dry.enabled and validate(dry):
        raise ConfigError("; ".join(validate(dry)), hint="fix or unset the DRY_* environment variables")
    from common.lazy_log import LOGGING

    journal = None
    if cfg.with_journal_logging is False or cfg.with_stdout_logging:
        journal = False

    def setup() -> None:
        from common.logs import setup_logging

        setup_logging(json_lines=cfg.log_json, level=cfg.log_level, journal=journal, secrets=[cfg.token])

    # applied at the first record, after the first register when all is well (common.lazy_log: issue 29)
    LOGGING.configure(setup)
    from agent.launcher import daemon_class

    try:
        return daemon_class(role, cfg.runner_mode)(cfg).run()
    finally:
        LOGGING.apply()  # a warning held for the first record is written even if none came


def _dispatch(args: list[str], role: str = "agent") -> int:
    if args and args[0] in not_here():
        raise ConfigError(f"'agent {args[0]}' runs in the agent image, not in this self-contained host binary",
                          hint="podman run --rm --privileged --net=host --pid=host --uts=host -v /:/host -v /dev:/dev "
                          f"IMAGE agent {args[0]} ...")
    if args and args[0] == "step":
        from agent.step_cli import run_step

        return run_step(args[1:])
    if args and args[0] == "inventory":
        from agent.inventory_report import main as inventory_main

        return inventory_main(args[1:])
    if args and args[0] == "check":
        from agent.check import main as check_main

        return check_main(args[1:])
    if args and args[0] == "record-host":
        from agent.record_host import main as record_main

        return record_main(args[1:])
    if args and args[0] == "completion":
        from agent.step_cli import run_completion

        return run_completion(args[1:])
    if args and not args[0].startswith("-"):
        import difflib

        close = difflib.get_close_matches(args[0], list(SUBCOMMANDS), n=1)
        raise ConfigError(f"no subcommand '{args[0]}'", hint=(f"did you mean '{close[0]}'? " if close else "")
                          + f"subcommands: {', '.join(SUBCOMMANDS)}; the daemon takes only flags")
    return _run_daemon(args, role)


def main(argv: Sequence[str] | None = None, *, role: str = "agent") -> int:
    """``role`` is ``next_step_runner`` for the image's command of that name (agent.entrypoints)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):  # the daemon (its subcommands keep the default: they die of it)
        _stop_on_sigterm_until_the_daemon_handles_it()
    return run_main(_prog(args), lambda: _dispatch(args, role))


def _stop_on_sigterm_until_the_daemon_handles_it() -> None:
    """SIGTERM before the daemon installs its own handler (agent.lifecycle) ends the process at once, exit 0.

    Why: a process without a handler dies of SIGTERM, except PID 1 of a PID namespace (a container without an
    init: the Go suite's compose service, ``podman run`` of the image), for which the kernel drops it: a stop
    during start-up was lost, and ``docker stop`` waited its 10 s for SIGKILL while the agent registered and
    polled (3 times in a run of the Go suite at load 13; at load 12 a SIGTERM 0.3 s after start was lost, now
    it ends the agent in 0.1 s). The interpreter's start and this module's imports before main() stay
    uncovered (a SIGTERM 0.1 s after start at that load); the Go runtime handles signals from its start.
    Nothing needs undoing this early: no lock, no step, no request sent.
    """
    import signal

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # main() called from another thread than the main one (tests): nothing to do
        pass


def _prog(args: list[str]) -> str:
    return f"agent {args[0]}" if args and args[0] in SUBCOMMANDS else "agent"


if __name__ == "__main__":
    sys.exit(main())
