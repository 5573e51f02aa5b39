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
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from common import __version__
from common.argparser import Parser
from common.errors import AgentError, ConfigError
from common.usage import run_main

PROG = "assisted-reference-service"
EXTRA_HINT = "pip install 'assisted-agent[service]'"
log = logging.getLogger("reference_service")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="port (default 8090; 0 picks a free one)")
    p.add_argument("--db", default=os.environ.get("REFERENCE_SERVICE_DB", "reference-service.db"),
                   help="SQLite file holding the state (default ./reference-service.db)")
    p.add_argument("--auth", choices=["none", "token"], default="none",
                   help="none: no authentication (local use); token: per-infra-env agent tokens, admin token")
    p.add_argument("--admin-token", default=os.environ.get("REFERENCE_SERVICE_ADMIN_TOKEN"),
                   help="user token for --auth token (default: generated and printed)")
    p.add_argument("--next-step-seconds", type=int, default=60,
                   help="next_instruction_seconds given to agents (the real service uses 60)")
    p.add_argument("--agent-image", default=None,
                   help="the agent version hosts must report; others get upgrade-agent (default: accept any)")
    p.add_argument("--test-mode", action="store_true", help="journal requests and allow fault injection")
    p.add_argument("--dry-run-install", action="store_true",
                   help="a host reporting Rebooting counts as installed (no cluster will report Done)")
    p.add_argument("--enable-virtual-interfaces", action="store_true",
                   default=os.environ.get("ENABLE_VIRTUAL_INTERFACES", "").lower() == "true",
                   help="keep virtual NICs (veth...) of inventories, as ENABLE_VIRTUAL_INTERFACES=true")
    p.add_argument("--inventory-max-size", type=int, default=os.environ.get("AGENT_INVENTORY_MAX_SIZE") or "0",
                   help="bytes an inventory may take before the agent truncates it (default "
                   "$AGENT_INVENTORY_MAX_SIZE or 0: no limit)")
    p.add_argument("--inventory-disk-min-size", type=int,
                   default=os.environ.get("AGENT_INVENTORY_DISK_MIN_SIZE") or "0",
                   help="disks smaller than this many bytes are left out of inventories (default "
                   "$AGENT_INVENTORY_DISK_MIN_SIZE or 0: none)")
    p.add_argument("--os-image", help="OS image file handed to hosts by write-image during an installation "
                   "(raw, xz, gzip or zstd; default $REFERENCE_SERVICE_OS_IMAGE)")
    p.add_argument("--discovery-iso", help="the ISO made by container/iso/build-iso.sh, served per infra-env at "
                   "downloads/image-url's URL")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                   help="a registry discovery hosts pull the agent image from over HTTP (repeatable)")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    p.add_argument("--tls-key", help="the certificate's PEM private key")
    p.add_argument("--body-stall-seconds", type=float, default=30.0,
                   help="refuse a request body that sends nothing for this long (default 30)")
    p.add_argument("--max-hosts-per-infra-env", type=int, default=5000,
                   help="hosts one infra-env (one agent token) may register; more are refused with 429 "
                   "(default 5000)")
    p.add_argument("--header-timeout-seconds", type=float, default=10.0,
                   help="close a connection whose request head (line and headers) is not complete this long "
                   "after it began (default 10; header_guard)")
    p.add_argument("--ready-file", help="write the service URL to this file once it accepts connections")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
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


def _check(ns: argparse.Namespace) -> None:
    """What can be wrong with a command line beyond its syntax, found before anything starts."""
    if not 0 <= ns.port <= 65535:
        raise ConfigError(f"--port {ns.port}: not a port (0 to 65535)", hint="0 picks a free one")
    if not 0 < ns.body_stall_seconds < float("inf"):
        raise ConfigError(f"--body-stall-seconds {ns.body_stall_seconds:g}: not a positive number of seconds",
                          hint="30 is the default")
    if ns.max_hosts_per_infra_env < 1:
        raise ConfigError(f"--max-hosts-per-infra-env {ns.max_hosts_per_infra_env}: at least 1",
                          hint="5000 is the default")
    if not 0 < ns.header_timeout_seconds < float("inf"):
        raise ConfigError(f"--header-timeout-seconds {ns.header_timeout_seconds:g}: not a positive number of "
                          "seconds", hint="10 is the default")
    if bool(ns.tls_cert) != bool(ns.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together", hint="give both PEM files, or neither for HTTP")
    for flag, path in (("--tls-cert", ns.tls_cert), ("--tls-key", ns.tls_key), ("--os-image", ns.os_image),
                       ("--discovery-iso", ns.discovery_iso)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{flag} {path}: no such file", hint="check the path")
    if ns.tls_cert:
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(ns.tls_cert, ns.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--tls-cert {ns.tls_cert} / --tls-key {ns.tls_key}: cannot load them: "
                              f"{getattr(exc, 'reason', None) or exc}",
                              hint="PEM files of a certificate (chain) and its matching private key") from None
    for flag, path in (("--db", ns.db), ("--ready-file", ns.ready_file)):
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
    _check(ns)
    if missing := _missing_extra():
        raise _extra_error(", ".join(missing))
    import asyncio
    import sqlite3

    try:
        import uvicorn

        from common import gc_policy
        from reference_service import listeners, monitor, reply_workers
        from reference_service.header_guard import HeaderLimits, guarded_protocol
        from reference_service.http.app import create_app
        from reference_service.orchestrator import ReferenceService
        from reference_service.settings import Settings
        from reference_service.store.database import Store
        from rules import load_areas
    except ModuleNotFoundError as exc:  # the metadata said all is there, but a module of the extra is not
        raise _extra_error(exc.name or str(exc)) from None

    if ns.os_image:
        from reference_service.os_image import OS_IMAGE_ENV

        os.environ[OS_IMAGE_ENV] = os.path.abspath(ns.os_image)
    logging.basicConfig(level=getattr(logging, ns.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(next_step_seconds=ns.next_step_seconds, agent_image=ns.agent_image, auth=ns.auth,
                        test_mode=ns.test_mode, dry_run_install=ns.dry_run_install,
                        enable_virtual_interfaces=ns.enable_virtual_interfaces,
                        inventory_max_size=ns.inventory_max_size,
                        inventory_disk_min_size=ns.inventory_disk_min_size,
                        body_stall_seconds=ns.body_stall_seconds,
                        max_hosts_per_infra_env=ns.max_hosts_per_infra_env,
                        discovery_iso=os.path.abspath(ns.discovery_iso) if ns.discovery_iso else None,
                        insecure_registries=tuple(ns.insecure_registry),
                        disabled_steps=frozenset(s.strip() for s in os.environ.get("DISABLED_STEPS", "").split(",")
                                                 if s.strip()))
    if ns.admin_token:
        settings.admin_token = ns.admin_token
    try:
        store = Store(ns.db)
    except (sqlite3.Error, OSError) as exc:
        raise AgentError(f"--db {ns.db}: cannot open the database: {exc}",
                         hint="a writable SQLite file, or a new path") from None
    service = ReferenceService(store, settings)
    areas = load_areas()
    app = create_app(service)

    try:
        socks = listeners.listen(ns.host, ns.port)
    except OSError as exc:
        raise AgentError(f"cannot listen on {ns.host}:{ns.port}: {exc.strerror}",
                         hint="another process may listen there; --port 0 picks a free port") from None
    host, port = socks[0].getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if ns.tls_cert else "http"
    url = f"{scheme}://{shown}:{port}"
    log.info("reference service listening on %s (db %s, auth %s, areas %s)", url, ns.db, ns.auth, ", ".join(areas))
    if ns.auth == "token" and not ns.admin_token:
        log.info("admin token (Authorization: Bearer ...): %s", settings.admin_token)

    # An agent keeps its connection between polls when the service does not close it first (uvicorn's
    # default closes it after 5 s, so every poll paid a new connection).
    keep_alive = max(5, 2 * ns.next_step_seconds + 5)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=keep_alive, backlog=listeners.BACKLOG,
                            http=guarded_protocol(HeaderLimits(timeout=ns.header_timeout_seconds)),
                            ssl_certfile=ns.tls_cert, ssl_keyfile=ns.tls_key)
    stopped: list[bool] = []
    watch: list[asyncio.Task[None]] = []

    def stop() -> None:
        """What the service kept in memory (check-ins, evaluations nobody waited for) written, and the worker
        process ended: once, on any way out."""
        if not stopped:
            stopped.append(True)
            for t in watch:
                t.cancel()
            reply_workers.shutdown()
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
        if ns.ready_file and server.started:
            tmp = ns.ready_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(url)
            os.replace(tmp, ns.ready_file)
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
