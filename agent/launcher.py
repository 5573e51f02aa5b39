"""The host side of the discovery image: register, then run the service's agent image as the next-step runner.

This is the Go agent's ``agent`` loop (go-agent-behaviour.md 2.3), which the discovery ISO's stock
``agent.service`` starts from ``/usr/local/bin/agent`` (copied out of the agent image): register; read the image,
host id and infra-env id to use from the register answer's ``next_step_runner_command``; run that image's
``next_step_runner`` in a privileged container that shares the host's pid, uts and network namespaces; when it
exits, register again. So an ``upgrade-agent`` step needs nothing on the host: the runner pulls the new image and
exits, and the next register answer names it. Everything the service sends is checked before it reaches podman's
command line (an image reference, two UUIDs); podman is never run through a shell.

Which loop ``agent`` runs: this one in the self-contained executable (a frozen build: it has no step code to run
steps with), the in-process poll loop (agent.daemon) in a pip-installed agent. ``AGENT_NEXT_STEP_RUNNER``
(``container`` or ``inline``) chooses explicitly.
"""

from __future__ import annotations

import os
import sys
import time

from agent.config import PROXY_VARS, AgentConfig
from agent.daemon import Daemon
from agent.lifecycle import Lifecycle
from agent.notify import Notifier
from agent.registration import Registrar
from common.errors import ConfigError, InvalidStepArguments
from common.host import Host
from common.lazy_log import LazyLogger
from common.service_client import ServiceClient

TYPE_CHECKING = False  # typing.TYPE_CHECKING without typing (common.records)
if TYPE_CHECKING:
    from typing import Any

    from common.answers import RunnerRequest

log = LazyLogger("agent")

MODE_ENV = "AGENT_NEXT_STEP_RUNNER"
CONTAINER_NAME = "next-step-runner"
#: Where the container sees the host's root (the runner gets ``--host-root`` so its steps describe the host).
HOST_ROOT_IN_CONTAINER = "/host"
#: The Go agent's mounts (HEAD); a source this host lacks is left out, where podman would refuse to start.
RUNNER_MOUNTS = ("/dev:/dev:rw", "/opt:/opt:rw", "/run/systemd/journal/socket:/run/systemd/journal/socket",
                 "/var/log:/var/log:rw", "/run/media:/run/media:rw", "/etc/pki:/etc/pki")
#: Which process's mount, ipc and network namespaces the image's ``podman`` enters (container/podman-host):
#: this agent's, which are the host's. Go's nsenter targets PID 1, the same namespaces on a booted host, but a
#: host whose PID 1 cannot be entered (a sandbox's init; a test host in a network namespace) would pull
#: upgrade-agent's image into the wrong store, or fail ("cannot open /proc/1/ns/ipc").
HOST_PID_ENV = "AGENT_HOST_PID"
#: The runner's ``--url`` when it holds a password: handed through podman's environment (``--env``), as the token
#: is, since every user of the host reads every process's command line in /proc (``--url`` there would show it).
URL_ENV = "AGENT_URL"
RUNNER_ENV = ("PULL_SECRET_TOKEN", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF",
              HOST_PID_ENV, *PROXY_VARS)


def container_mode(mode: str) -> bool:
    """True when ``agent`` should launch the runner container rather than poll itself; ``mode`` is the
    ``runner_mode`` setting (AGENT_NEXT_STEP_RUNNER)."""
    frozen = bool(getattr(sys, "frozen", False))
    wanted = (mode or ("container" if frozen else "inline")).strip().lower()
    if wanted not in ("container", "inline"):
        raise ConfigError(f"{MODE_ENV}={wanted!r}: expected container or inline")
    if wanted == "inline" and frozen:
        raise ConfigError(f"{MODE_ENV}=inline: this self-contained agent has no step code",
                          hint="it runs the steps in the agent image; a pip-installed agent runs them itself")
    return wanted == "container"


def parse_runner_command(response: Any) -> tuple[RunnerRequest | None, float, str]:
    """The daemon's reading of the runner command (common.answers), plus what podman's command line needs: an
    image reference that cannot be taken for one of podman's options."""
    from common.answers import parse_runner_command as parse_answer
    from common.podman import check_reference

    request, delay, problem = parse_answer(response)
    if request is not None:
        try:
            check_reference("next_step_runner_command", request.agent_version)
        except InvalidStepArguments as exc:
            return None, delay, f"next_step_runner_command.args[0] is invalid: {exc}"
    return request, delay, problem


def runner_argv(config: AgentConfig, request: RunnerRequest, *, exists: Any = os.path.exists) -> list[str]:
    """``podman run`` of the service's image as next_step_runner: the Go agent's line plus the host at /host.
    A URL with a password goes to the runner through podman's environment (URL_ENV), not as ``--url``."""
    from common.podman import podman_argv

    argv = ["run", "--rm", "--privileged", "--pid=host", "--uts=host", "--net=host", "--pids-limit=0"]
    mounts = [m for m in RUNNER_MOUNTS if exists(m.split(":", 1)[0])]
    if config.cacert:
        mounts.append(f"{config.cacert}:{config.cacert}:ro")
    mounts.append(f"/:{HOST_ROOT_IN_CONTAINER}:rslave")
    for mount in mounts:
        argv += ["-v", mount]
    secret_url = _has_password(config.url)
    for var in (*RUNNER_ENV, *([URL_ENV] if secret_url else [])):
        argv += ["--env", var]
    argv += ["--name", CONTAINER_NAME, request.agent_version, "next_step_runner",
             *([] if secret_url else ["--url", config.url]),
             "--infra-env-id", request.infra_env_id, "--host-id", request.host_id,
             "--agent-version", request.agent_version, f"--insecure={str(config.insecure).lower()}",
             "--host-root", HOST_ROOT_IN_CONTAINER]
    if config.cacert:
        argv += ["--cacert", config.cacert]
    return podman_argv(*argv, options=config.podman_args)


def runner_env(config: AgentConfig) -> dict[str, str]:
    """podman's environment, from which ``--env VAR`` (RUNNER_ENV) hands values to the container: the token and
    agent.conf's proxies from the settings, the rest (CONTAINERS_*, proxies) as the agent was started with."""
    env = {**os.environ, **config.proxies, "PULL_SECRET_TOKEN": config.token, HOST_PID_ENV: str(os.getpid())}
    if _has_password(config.url):
        env[URL_ENV] = config.url
    return env


def _has_password(url: str) -> bool:
    """Whether ``url`` carries user information (``user:password@``), which must not reach a command line."""
    from urllib.parse import urlsplit

    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return "@" in url


class Launcher:
    """Register, launch the runner container, wait for it, repeat. It polls nothing itself: the runner does."""

    def __init__(self, config: AgentConfig, *, client: ServiceClient | None = None,
                 notifier: Notifier | None = None, host: Host | None = None) -> None:
        self.config = config
        self.client = client or ServiceClient(config)
        self.notifier = notifier or Notifier()
        self.life = Lifecycle(self.notifier, abort=lambda: self.client.abort())
        self.stop = self.life.stop
        self.registrar = Registrar(config, self.client, host or Host.at(config.host_root), config.dry, self.life)

    def run(self) -> int:
        if not self.life.start(self.config.url, self.config.token, self.config.state_mark):
            return 1
        while not self.stop.is_set():
            registration = self.registrar.register()
            if registration is None:
                break
            request, delay_on_error, problem = parse_runner_command(registration.response)
            log.info("registered host %s (id from %s); runner image %s", registration.host_id, registration.how,
                     request.agent_version if request else "none")
            self.notifier.status(f"registered as host {registration.host_id}")
            if request is None:
                log.error("%s; registering again in %.0fs", problem, delay_on_error)
                self.life.sleep(delay_on_error)
                continue
            code = self._run_runner(request)
            if code != 0 and not self.stop.is_set():
                log.warning("next_step_runner exited with %d; registering again in %.0fs", code, delay_on_error)
                self.life.sleep(delay_on_error)
        self.notifier.stopping("stopped")
        log.info("agent stopped")
        self.life.release()
        return 0

    def _run_runner(self, request: RunnerRequest) -> int:
        import subprocess  # here: the daemon's way to its first register has no use for it

        from common.podman import podman_argv

        cleanup = podman_argv("rm", "--force", "--ignore", CONTAINER_NAME, options=self.config.podman_args)
        try:
            subprocess.run(cleanup, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
            proc = subprocess.Popen(runner_argv(self.config, request), stdin=subprocess.DEVNULL,
                                    env=runner_env(self.config))
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("cannot run podman: %s", exc)
            return -1
        log.info("next_step_runner started from %s (podman pid %d)", request.agent_version, proc.pid)
        self.notifier.status(f"host {request.host_id}: next_step_runner running from {request.agent_version}")
        stopping_since: float | None = None
        while True:
            try:
                return proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                self.notifier.watchdog()
            if self.stop.is_set() and stopping_since is None:
                stopping_since = time.monotonic()
                proc.terminate()  # podman passes the signal on to the runner, which finishes its steps
            elif stopping_since is not None and time.monotonic() - stopping_since > self.config.shutdown_grace + 15:
                proc.kill()
                proc.wait()
                subprocess.run(cleanup, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
                return -1


def daemon_class(role: str, mode: str = "") -> type[Daemon | Launcher]:
    """The loop ``agent`` (role "agent") or the image's ``next_step_runner`` runs."""
    if role == "next_step_runner":
        from agent.next_step_runner import NextStepRunner

        return NextStepRunner
    return Launcher if container_mode(mode) else Daemon
