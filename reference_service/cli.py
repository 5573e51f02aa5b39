"""``assisted-reference-service``: run the bundled reference service.

    assisted-reference-service [--host 127.0.0.1] [--port 8090] [--db PATH] [--auth none|token]
                               [--next-step-seconds N] [--agent-image IMAGE] [--test-mode]

It prints where it listens (and, with ``--auth token``, the admin token) on its first log lines; with
``--port 0`` it picks a free port, and ``--ready-file`` gets the URL once it accepts connections.

Like ``agent``, every command-line error and start-up failure is one line and a hint (common.usage): exit 2 for
a bad command line (unreadable TLS files included), 1 for a failure at run time (the port taken, the database
unusable, the ``service`` extra not installed). ``--help`` and ``--version`` need none of the extra's packages,
so this module imports them only once the command line is good.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from common import __version__
from common.argparser import Parser
from common.errors import AgentError, ConfigError
from common.usage import run_main
from reference_service.settings import Settings, admin_token_given, resolve

PROG = "assisted-reference-service"
EXTRA_HINT = "pip install 'assisted-agent[service]'"
log = logging.getLogger("reference_service")


def parser() -> argparse.ArgumentParser:
    """The command line, made from reference_service.settings.TABLE."""
    from reference_service.settings import TABLE, add_flags

    environment = "\n".join(f"  {s.env:38} " + (f"as {s.flag}" if s.flag else s.help) for s in TABLE if s.env)
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="subcommands:\n  swarm                                  many simulated hosts "
               "(assisted-reference-service swarm --help)\n"
               "  lab                                    QEMU machines booting the discovery ISO "
               "(assisted-reference-service lab --help)\n\n"
               "auth: --auth none (the default) leaves every route open, for local use; with --auth token, users\n"
               "send the admin token as 'Authorization: Bearer <token>' (or bare, as aicli's AI_TOKEN does) and\n"
               "agents their infra-env's token as X-Secret-Key (GET /api/reference/infra-envs/ID/token)\n\n"
               "environment: (a flag wins over the environment; docs/settings.md has them all)\n"
               + environment + f"\n  {'ASSISTED_SPEC':38} the spec documents are checked against (default: the "
               "bundled swagger.yaml)")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_flags(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["swarm"]:
        from swarm.run import main as swarm_main

        return swarm_main(args[1:])
    if args[:1] == ["lab"]:
        from reference_service.lab import main as lab_main

        return lab_main(args[1:])
    return run_main(PROG, lambda: _main(args))


def _check(settings: Settings, os_image: str | None = None) -> None:
    """What can be wrong with a command line beyond its syntax, found before anything starts (``os_image``: the
    --os-image flag; $REFERENCE_SERVICE_OS_IMAGE is looked for only when an installation needs it)."""
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"--port {settings.port}: not a port (0 to 65535)", hint="0 picks a free one")
    if not 0 < settings.body_stall_seconds < float("inf"):
        raise ConfigError(f"--body-stall-seconds {settings.body_stall_seconds:g}: not a positive number of seconds",
                          hint="30 is the default")
    if settings.max_hosts_per_infra_env < 1:
        raise ConfigError(f"--max-hosts-per-infra-env {settings.max_hosts_per_infra_env}: at least 1",
                          hint="5000 is the default")
    if not 0 < settings.header_timeout_seconds < float("inf"):
        raise ConfigError(f"--header-timeout-seconds {settings.header_timeout_seconds:g}: not a positive number of "
                          "seconds", hint="10 is the default")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together", hint="give both PEM files, or neither for HTTP")
    for flag, path in (("--tls-cert", settings.tls_cert), ("--tls-key", settings.tls_key), ("--os-image", os_image),
                       ("--discovery-iso", settings.discovery_iso)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{flag} {path}: no such file", hint="check the path")
    if settings.tls_cert:
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.tls_cert, settings.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: cannot load them: "
                              f"{getattr(exc, 'reason', None) or exc}",
                              hint="PEM files of a certificate (chain) and its matching private key") from None
    for flag, path in (("--db", settings.db), ("--ready-file", settings.ready_file)):
        where = os.path.dirname(os.path.abspath(path)) if path else ""
        if where and not os.path.isdir(where):
            raise ConfigError(f"{flag} {path}: directory {where} does not exist", hint="create it first")


def _missing_extra() -> list[str]:
    """The distributions of the ``service`` extra that are not installed, read from the package's metadata."""
    import re
    from importlib import metadata

    try:
        wanted = [r for r in metadata.requires("assisted-agent") or [] if re.search(r"extra *== *.service.", r)]
    except metadata.PackageNotFoundError:  # run from a source tree: the imports below say what is missing
        return []
    missing = []
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        try:
            metadata.version(name.group(0) if name else requirement)
        except metadata.PackageNotFoundError:
            missing.append(name.group(0) if name else requirement)
    return missing


def _extra_error(missing: str) -> AgentError:
    return AgentError(f"the reference service needs the 'service' extra: {missing} is not installed",
                      hint=EXTRA_HINT, code="service-extra-missing")


def _main(argv: Sequence[str] | None) -> int:
    ns = parser().parse_args(argv)
    settings = resolve(ns)
    _check(settings, ns.os_image)
    if missing := _missing_extra():
        raise _extra_error(", ".join(missing))
    import asyncio
    import sqlite3

    try:
        import uvicorn

        from common import gc_policy
        from reference_service import listeners, monitor
        from reference_service.header_guard import HeaderLimits, guarded_protocol
        from reference_service.http.app import create_app
        from reference_service.orchestrator import ReferenceService
        from reference_service.store.database import Store
        from rules import load_areas
    except ModuleNotFoundError as exc:  # the metadata said all is there, but a module of the extra is not
        raise _extra_error(exc.name or str(exc)) from None

    if settings.os_image:
        settings.os_image = os.path.abspath(settings.os_image)
    if settings.discovery_iso:
        settings.discovery_iso = os.path.abspath(settings.discovery_iso)
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        store = Store(settings.db, sync=settings.db_sync != "off")
    except (sqlite3.Error, OSError) as exc:
        raise AgentError(f"--db {settings.db}: cannot open the database: {exc}",
                         hint="a writable SQLite file, or a new path") from None
    service = ReferenceService(store, settings)
    areas = load_areas()
    app = create_app(service)

    try:
        socks = listeners.listen(settings.host, settings.port)
    except OSError as exc:
        raise AgentError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
                         hint="another process may listen there; --port 0 picks a free port") from None
    host, port = socks[0].getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if settings.tls_cert else "http"
    url = f"{scheme}://{shown}:{port}"
    log.info("reference service listening on %s (db %s, auth %s, areas %s)", url, settings.db, settings.auth,
             ", ".join(areas))
    if settings.auth == "none" and not ipaddress.ip_address(host).is_loopback:
        log.warning("listening on %s with --auth none: anyone who can reach it may use every route; "
                    "use --auth token beyond this machine", url)
    if settings.auth == "token" and not admin_token_given(ns):
        log.info("admin token (Authorization: Bearer ...): %s", settings.admin_token)

    # An agent keeps its connection between polls when the service does not close it first (uvicorn's
    # default closes it after 5 s, so every poll paid a new connection).
    keep_alive = max(5, 2 * settings.next_step_seconds + 5)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=keep_alive, backlog=listeners.BACKLOG,
                            http=guarded_protocol(HeaderLimits(timeout=settings.header_timeout_seconds)),
                            ssl_certfile=settings.tls_cert or None, ssl_keyfile=settings.tls_key or None)
    stopped: list[bool] = []
    watch: list[asyncio.Task[None]] = []

    def stop() -> None:
        """What the service kept in memory (check-ins, evaluations nobody waited for) written, and the worker
        process ended: once, on any way out."""
        if not stopped:
            stopped.append(True)
            for t in watch:
                t.cancel()
            service.reply_workers.shutdown()
            service.store.close()

    class Server(uvicorn.Server):
        """uvicorn's server, which re-raises the SIGTERM or SIGINT that stopped it once it has shut down: the
        store is closed before that, as SIGTERM's default action ends the process where it stands."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    stop()

    server = Server(config)

    async def serve() -> None:
        gc_policy.settle_after_startup()
        task = asyncio.create_task(server.serve(sockets=socks))
        watch.extend([asyncio.create_task(monitor.run(service)), asyncio.create_task(monitor.settle(service))])
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if settings.ready_file and server.started:
            tmp = settings.ready_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(url)
            os.replace(tmp, settings.ready_file)
        await task
        stop()

    # The monitor's digest thread is CPU-bound; with the default 5 ms switch interval every socket operation
    # of the event loop (each releases the GIL) waited up to 5 ms to get it back: polls took seconds at
    # 1,000 hosts with a core idle (docs/scale.md).
    sys.setswitchinterval(0.0005)
    try:  # uvicorn's choice when it runs the loop itself: about twice the requests per CPU second
        import uvloop
    except ModuleNotFoundError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())
    stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
