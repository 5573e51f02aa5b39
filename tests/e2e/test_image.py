"""The discovery boot with the built agent image, end to end, as the stock discovery ISO does it.

The image is built by ``container/build.sh`` (once per set of inputs: ``tests.support.image.cached_image``
reuses the tests' store when nothing it is made from changed). Then the test does what the ``agent.service``
that the real assisted-service writes into the ISO does (``systemd/discovery-agent.service`` is a copy, read
here, not retyped): its ``ExecStartPre`` with podman (this machine's podman starts containers with the
configuration ``tests.support.image.podman_config`` writes, passed as ``CONTAINERS_CONF`` /
``CONTAINERS_STORAGE_CONF``, the variables the agent passes into its runner), copying ``/usr/bin/agent`` out of
the image; then its ``ExecStart`` with the copied file, the unit's environment and a ``PATH`` that holds podman
and no Python, inside a host network namespace whose only way out is a veth to the hub where the reference
service listens. No shim: the real podman runs the image's ``next_step_runner`` (``--net=host`` puts it in
the host's namespace), and the test checks the host registers, the runner's steps run, and the service stores
their replies, the inventory among them, so the host leaves ``discovering``.

Two deviations from a booted ISO, both for isolation: ``AGENT_STATE_DIR`` points the host agent's state into
the test's directory (not this machine's /var/lib), and the ``-v /usr/local/bin:/hostbin`` source is the test's
directory. Everything (agent, runner container, namespaces) is removed at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.image import BUILD_TIMEOUT, BuiltImage, cached_image, in_netns
from tests.support.netns import SUBNET4, Network
from tests.support.paths import ROOT
from tests.support.service import RefService, stop_process

UNIT = ROOT / "systemd" / "discovery-agent.service"
#: Bounds once the image exists: the host must leave discovering within this, on this shared 2-core machine.
DISCOVERY_TIMEOUT = 240

pytestmark = [
    pytest.mark.netns, pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (shutil.which("buildah") and shutil.which("podman")), reason="needs buildah and podman"),
    # The first test of a session may build the image (minutes); the rest of each test is bounded below.
    pytest.mark.timeout(BUILD_TIMEOUT + DISCOVERY_TIMEOUT + 300),
]


@pytest.fixture(scope="module")
def image() -> Iterator[BuiltImage]:
    with cached_image() as built:
        yield built


def stock_unit(values: dict[str, str]) -> tuple[dict[str, str], list[str], list[str]]:
    """The unit's Environment, ExecStartPre and ExecStart, placeholders filled in (systemd splits like shlex)."""
    text = UNIT.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    assert "{{" not in text, "a placeholder the test does not know"
    env: dict[str, str] = {}
    pre: list[str] = []
    start: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "ExecStartPre":
            pre = shlex.split(value)
        elif key == "ExecStart":
            start = shlex.split(value)
    assert pre and start and "PULL_SECRET_TOKEN" in env
    return env, pre, start


def no_python_path(directory: Path) -> str:
    """A PATH with podman and nothing else: whatever the copied agent needs must be inside it."""
    directory.mkdir()
    podman = shutil.which("podman")
    assert podman
    (directory / "podman").symlink_to(podman)
    assert shutil.which("python3", path=str(directory)) is None
    return str(directory)


def runner_containers(image: BuiltImage) -> list[str]:
    proc = image.podman("ps", "--format", "{{.Names}} {{.Image}}", check=False, timeout=60)
    return [line for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture
def network() -> Iterator[Network]:
    with Network(tag="img") as net:
        yield net


def new_infra_env(svc: RefService, **cluster: Any) -> tuple[str, str]:
    """A cluster's infra-env and its agent token."""
    cluster = svc.create_cluster(name="image-e2e", **cluster)
    infra_env = svc.create_infra_env(cluster["id"])
    return infra_env["id"], svc.token(infra_env["id"])


@contextlib.contextmanager
def stock_agent(image: BuiltImage, service_url: str, host_name: str, infra_env_id: str, token: str,
                tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The stock unit's ExecStartPre, then its ExecStart (the copied ELF) in the host namespace ``host_name``:
    (agent process, its log, which the runner's output joins). Agent and runner container go at the end."""
    hostbin = tmp_path / "hostbin"
    hostbin.mkdir()
    path = no_python_path(tmp_path / "path")
    log_path = tmp_path / "agent.log"
    unit_env, pre, start = stock_unit({"AGENT_IMAGE": image.ref, "SERVICE_URL": service_url,
                                       "INFRA_ENV_ID": infra_env_id, "PULL_SECRET_TOKEN": token,
                                       "INSECURE": "false"})
    env = {**unit_env, "PATH": path, **image.env, "AGENT_STATE_DIR": str(tmp_path / "state")}

    # ExecStartPre, as written, with the test's directory in place of the host's /usr/local/bin.
    pre = [f"{hostbin}:/hostbin" if a == "/usr/local/bin:/hostbin" else a for a in pre]
    copied = subprocess.run(in_netns(host_name, pre, tmp_path / "cg-pre"), env=env, capture_output=True,
                            text=True, timeout=180)
    assert copied.returncode == 0, f"ExecStartPre failed: {copied.stderr[-2000:]}"
    agent = hostbin / "agent"
    assert agent.read_bytes()[:4] == b"\x7fELF" and os.access(agent, os.X_OK)
    assert start[0] == "/usr/local/bin/agent"
    start[0] = str(agent)

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(in_netns(host_name, start, tmp_path / "cg-agent"), env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc, log_path
    finally:
        stop_process(proc)
        image.podman("rm", "--force", "--ignore", "next-step-runner", check=False, timeout=120)


def test_stock_discovery_unit_boots_a_host_with_the_image(image: BuiltImage, network: Network,
                                                          tmp_path: Path) -> None:
    host = network.add_host()
    with network.start_service(tmp_path, extra=["--enable-virtual-interfaces", "--agent-image", image.ref]) as svc:
        infra_env_id, token = new_infra_env(svc)
        with stock_agent(image, svc.agent_url, host.name, infra_env_id, token, tmp_path) as (proc, log_path):
            discovered = wait_discovered(svc, infra_env_id, proc, log_path, image)
            check_discovery(svc, image, host.ipv4, discovered, log_path)
            stopped_cleanly(proc, image, log_path)


def left_discovering(host: dict[str, Any]) -> bool:
    return host["status"] not in ("discovering", "discovering-unbound") and bool(host.get("inventory"))


def wait_discovered(svc: RefService, infra_env_id: str, proc: subprocess.Popen[bytes], log_path: Path,
                    image: BuiltImage, done: Callable[[dict[str, Any]], bool] = left_discovering,
                    what: str = "leave discovering") -> dict[str, Any]:
    """The host once ``done`` (by default: its inventory is stored, it has left discovering), while the agent
    runs. Fails with the agent's and runner's log."""
    deadline = time.monotonic() + DISCOVERY_TIMEOUT
    hosts: list[dict[str, Any]] = []
    while time.monotonic() < deadline and proc.poll() is None:
        hosts = svc.hosts(infra_env_id)
        if hosts and done(hosts[0]):
            return hosts[0]
        time.sleep(1)
    seen = [(h["id"], h["status"], h.get("status_info"), h.get("discovery_agent_version")) for h in hosts]
    raise AssertionError(f"the host did not {what} within {DISCOVERY_TIMEOUT}s (agent exit "
                         f"{proc.poll()}); hosts {seen}; containers {runner_containers(image)}\n"
                         f"agent and runner log:\n{log_path.read_text(errors='replace')[-6000:]}\n"
                         f"service log:\n{svc.log.read_text(errors='replace')[-3000:]}")


def check_discovery(svc: RefService, image: BuiltImage, ipv4: str, host: dict[str, Any], log_path: Path) -> None:
    # The steps ran in the runner container, started from the image the register answer named.
    assert any(line.startswith("next-step-runner ") and image.ref in line for line in runner_containers(image))
    assert host["discovery_agent_version"] == image.ref
    deadline = time.monotonic() + 90
    kinds: set[str] = set()
    while len(kinds) < 3 and time.monotonic() < deadline:  # the steps after the inventory, for another minute
        kinds = {r["step_type"] for r in svc.replies(host["id"])}
        time.sleep(1)
    assert "inventory" in kinds and len(kinds) >= 3, f"only {kinds} replied"
    # The inventory describes the namespace the host agent runs in: its veth and its address.
    inventory = json.loads(host["inventory"])
    addresses = [a for nic in inventory["interfaces"] for a in nic.get("ipv4_addresses", [])]
    assert any(a.startswith(ipv4 + "/") for a in addresses), addresses
    assert inventory["hostname"] == os.uname().nodename  # --uts=host
    log = log_path.read_text(errors="replace")
    assert "registered host" in log and "next_step_runner started from" in log, log[-3000:]


def stopped_cleanly(proc: subprocess.Popen[bytes], image: BuiltImage, log_path: Path) -> None:
    """SIGTERM, as systemd stops the unit: podman passes it on, the runner ends, the agent exits 0."""
    proc.terminate()
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the agent did not stop within 60 s:\n{log_path.read_text()[-3000:]}") from None
    assert code == 0, log_path.read_text()[-3000:]
    deadline = time.monotonic() + 30
    while any(line.startswith("next-step-runner ") for line in runner_containers(image)):
        assert time.monotonic() < deadline, "the runner container outlived its agent"
        time.sleep(1)


#: The upgrade test's poll interval: long enough that the upgrade's pull (from local storage, a second or so)
#: is over before the next poll, as the real service's 60 s is for a real pull; else the runner's next poll
#: would get a second upgrade-agent, answered "pull in progress" as the Go agent's semaphore does.
UPGRADE_POLL_SECONDS = 6


def test_upgrade_agent_with_the_stock_unit(image: BuiltImage, network: Network, tmp_path: Path) -> None:
    """The service is upgraded mid-discovery (restarted on its database with a new agent image, as a new
    AGENT_DOCKER_IMAGE is deployed): the runner pulls the new image and exits, the host's agent (the ELF from
    the stock unit, never restarted) registers again and runs the image the service now names, which reports
    that version, so the service asks exactly once. The new image is the built one under a second tag, in
    local storage only (no registry has it: the step's pull fails and finds it there)."""
    host = network.add_host()
    new = f"localhost/assisted-agent:v2-{uuid.uuid4().hex[:6]}"
    image.podman("tag", image.ref, new)
    flags = ["--enable-virtual-interfaces", "--agent-image"]
    try:
        with contextlib.ExitStack() as services:
            svc = services.enter_context(network.start_service(
                tmp_path, next_step_seconds=UPGRADE_POLL_SECONDS, extra=[*flags, image.ref]))
            # A machine network, so that discovery ends in insufficient or known, not pending-for-input.
            infra_env_id, token = new_infra_env(svc, machine_networks=[{"cidr": str(SUBNET4)}])
            with stock_agent(image, svc.agent_url, host.name, infra_env_id, token, tmp_path) as (proc, log_path):
                first = wait_discovered(svc, infra_env_id, proc, log_path, image)
                assert first["discovery_agent_version"] == image.ref
                assert not svc.replies(first["id"], "upgrade-agent")

                # The service's upgrade: same database, same address, a new agent image.
                port = int(svc.agent_url.rsplit(":", 1)[1])
                stop_process(svc.proc)
                started = time.monotonic()
                svc = services.enter_context(network.start_service(
                    tmp_path, port=port, db=svc.db, next_step_seconds=UPGRADE_POLL_SECONDS, extra=[*flags, new]))
                upgraded = wait_discovered(
                    svc, infra_env_id, proc, log_path, image, what=f"report {new} out of discovering",
                    done=lambda h: left_discovering(h) and h.get("discovery_agent_version") == new)
                seconds = time.monotonic() - started
                assert upgraded["status"] in ("insufficient", "known"), upgraded["status_info"]

                # A few more polls: the service does not ask again, the new runner keeps running.
                time.sleep(3 * UPGRADE_POLL_SECONDS)
                log = log_path.read_text(errors="replace")
                issued = set(re.findall(r"upgrade-agent-[0-9a-f]{8}", log))  # every one the runners got
                assert len(issued) == 1, log[-4000:]
                replies = svc.replies(upgraded["id"], "upgrade-agent")
                assert [json.loads(r["output"]) for r in replies] == [{"agent_image": new, "result": "success"}]
                assert svc.host(infra_env_id, upgraded["id"])["discovery_agent_version"] == new
                assert any(line.startswith("next-step-runner ") and new in line for line in runner_containers(image))
                assert proc.poll() is None, "the host's agent exited: the stock unit would have had to restart it"
                assert log.count("next_step_runner started from") == 2, log[-3000:]
                assert f"next_step_runner started from {new}" in log, log[-3000:]
                print(f"upgrade: {seconds:.1f} s from the service's restart to the host out of discovering on {new}")
    finally:
        image.podman("rmi", new, check=False, timeout=120)
