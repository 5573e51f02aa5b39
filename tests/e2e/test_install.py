"""The real service's install and stop-installation steps: validation, the Go agent's podman command line, and
real podman runs. No registry is reachable from here, so pulls go to 127.0.0.1:9 (refused at once), and the
"installer image" is an empty image committed locally with buildah (it cannot run on this machine: runc is
refused its rlimits, which is exactly a failing installer container)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import InvalidStepArguments
from common.host import Host
from reference_service import spec
from steps.base import StepContext
from steps.install import InstallStep, installer_command, validate_request, wants_copy_network
from steps.stop_installation import StopInstallationStep

IE = "456eecf6-0000-4000-8000-000000000001"
CLUSTER = "cd781f46-0000-4000-8000-000000000002"
HOST = "f7ac1860-0000-4000-8000-000000000003"
needs_podman = pytest.mark.skipif(shutil.which("podman") is None or os.geteuid() != 0, reason="needs root podman")


def go_request(**change: Any) -> dict[str, Any]:
    """The request of the Go agent's install_cmd_test.go, with our ids."""
    req = {"boot_device": "/dev/null", "check_cvo": True, "cluster_id": CLUSTER, "control_plane_count": 3,
           "controller_image": "quay.io/edge-infrastructure/assisted-installer-controller:latest",
           "disks_to_format": [], "host_id": HOST, "infra_env_id": IE,
           "installer_args": '["--append-karg","ip=ens3:dhcp"]',
           "installer_image": "quay.io/edge-infrastructure/assisted-installer:latest",
           "mco_image": "quay.io/openshift/mco:4.9",
           "must_gather_image": '{"ocp":"quay.io/mg:1","lso":"quay.io/lso:1"}',
           "openshift_version": "4.9.24", "role": "bootstrap",
           "proxy": {"http_proxy": "http://proxy.example:3128", "https_proxy": "https://proxy.example:3129",
                     "no_proxy": ".cluster.local,10.0.0.0/8,api.example.com"},
           "service_ips": ["10.0.0.1", "10.0.0.2"], "coreos_image": "quay.io/rhcos:416",
           "enable_skip_mco_reboot": False, "notify_num_reboots": True, "skip_installation_disk_cleanup": False}
    req.update(change)
    return req


def ctx(**cfg: Any) -> StepContext:
    base = {"url": "http://10.1.2.3:8090", "agent_version": "quay.io/edge-infrastructure/assisted-installer-agent:v1"}
    return StepContext(host=Host.at("/"), config=AgentConfig(**{**base, **cfg}))


def test_the_go_request_is_valid_for_spec_and_step() -> None:
    assert spec.errors("install_cmd_request", go_request()) == []
    InstallStep().parse_args([json.dumps(go_request())])


def test_installer_command_is_the_go_agents() -> None:
    argv = installer_command(go_request(), url="http://10.1.2.3:8090", agent_image="agent:v1",
                             cacert="/etc/assisted/ca.pem", insecure=True)
    assert argv == [
        "podman", "run", "--privileged", "--pid=host", "--net=host", "--name=assisted-installer",
        "-v", "/dev:/dev:rw", "-v", "/opt:/opt:rw", "-v", "/var/log:/var/log:rw",
        "-v", "/run/systemd/journal/socket:/run/systemd/journal/socket", "-v", "/etc/pki:/etc/pki",
        "-v", "/tmp:/tmp", "--env=PULL_SECRET_TOKEN", "-v", "/etc/assisted/ca.pem:/etc/assisted/ca.pem:rw",
        "quay.io/edge-infrastructure/assisted-installer:latest",
        "--role", "bootstrap", "--infra-env-id", IE, "--cluster-id", CLUSTER, "--host-id", HOST,
        "--boot-device", "/dev/null", "--url", "http://10.1.2.3:8090",
        "--controller-image", "quay.io/edge-infrastructure/assisted-installer-controller:latest",
        "--agent-image", "agent:v1", "--control-plane-count", "3", "--mco-image", "quay.io/openshift/mco:4.9",
        "--must-gather-image", '{"ocp":"quay.io/mg:1","lso":"quay.io/lso:1"}', "--openshift-version", "4.9.24",
        "--insecure", "--check-cluster-version", "--cacert", "/etc/assisted/ca.pem",
        "--installer-args", '["--append-karg", "ip=ens3:dhcp"]', "--notify-num-reboots",
        "--http-proxy", "http://proxy.example:3128", "--https-proxy", "https://proxy.example:3129",
        "--no-proxy", ".cluster.local,10.0.0.0/8,api.example.com", "--service-ips", "10.0.0.1,10.0.0.2",
        "--coreos-image", "quay.io/rhcos:416",
    ]
    minimal = installer_command(go_request(disks_to_format=["/dev/sdb", "/dev/sdc"], check_cvo=False, proxy=None,
                                           installer_args="", skip_installation_disk_cleanup=True),
                                url="u", agent_image="a", cacert=None, insecure=False, copy_network=True)
    assert "--check-cluster-version" not in minimal and "--insecure" not in minimal
    assert minimal[minimal.index("--format-disk") + 1] == "/dev/sdb" and minimal.count("--format-disk") == 2
    assert "--skip-installation-disk-cleanup" in minimal
    assert minimal[minimal.index("--installer-args") + 1] == '["--copy-network"]'


@pytest.mark.parametrize(("change", "message"), [
    ({"boot_device": "sda"}, "must be a path under /dev/"),
    ({"boot_device": "/dev/ainst-no-such-disk"}, "does not exist on this host"),
    ({"disks_to_format": ["/dev/ainst-no-such-disk"]}, "does not exist on this host"),
    ({"installer_image": "Quay.io/UPPER CASE"}, "not a valid image reference"),
    ({"must_gather_image": '{"bad":"quay.io/x:1"}'}, "keys must be among"),
    ({"must_gather_image": "{broken"}, "not valid JSON"),
    ({"proxy": {"http_proxy": "https://p:1"}}, "http_proxy"),
    ({"proxy": {"https_proxy": "socks5://p:1"}}, "https_proxy"),
    ({"proxy": {"no_proxy": "a b"}}, "no_proxy entry"),
    ({"installer_args": '["--firstboot-args","rd.break"]'}, "not allowed"),
    ({"installer_args": '"--append-karg"'}, "JSON list of strings"),
    ({"openshift_version": "four"}, "not a version"),
    ({"role": "king"}, "role must be one of"),
    ({"host_id": "h"}, "host_id must be a UUID"),
])
def test_invalid_requests_are_refused_before_anything_runs(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidStepArguments, match=message):
        validate_request(go_request(**change), Host.at("/").exists)


def test_wrong_argument_count() -> None:
    with pytest.raises(InvalidStepArguments, match="accepts only 1 params"):
        InstallStep().parse_args([])
    with pytest.raises(InvalidStepArguments, match="accepts only 0 params"):
        StopInstallationStep().parse_args(["x"])


def test_copy_network_follows_the_agent_tui(tmp_path: Path) -> None:
    host_ctx = StepContext(host=Host.at(tmp_path), config=AgentConfig())
    assert not wants_copy_network(host_ctx)
    (tmp_path / "var" / "log" / "agent").mkdir(parents=True)
    (tmp_path / "var" / "log" / "agent" / "agent-tui.log").write_text("tui")
    conns = tmp_path / "proc" / "1" / "root" / "etc" / "NetworkManager" / "system-connections"
    conns.mkdir(parents=True)
    (conns / "eth0.nmconnection").write_text("[ethernet]\n")
    assert not wants_copy_network(host_ctx)
    (conns / "eth0.nmconnection").write_text("[connection]\nid=eth0\n")
    assert wants_copy_network(host_ctx)


@needs_podman
def test_a_failing_pull_is_exit_code_2() -> None:
    step = InstallStep()
    params = step.parse_args([json.dumps(go_request(installer_image="127.0.0.1:9/ainst/assisted-installer:latest"))])
    result = step.run(params, ctx())
    assert result.exit_code == 2
    assert "failed to pull installer image 127.0.0.1:9/ainst/assisted-installer:latest" in result.error
    assert "connection refused" in result.error


@pytest.fixture
def local_installer_image() -> Iterator[str]:
    name = "localhost/ainst-installer:test"
    container = subprocess.run(["buildah", "from", "scratch"], check=True, capture_output=True, text=True,
                               timeout=60).stdout.strip()
    try:
        subprocess.run(["buildah", "commit", "-q", container, name], check=True, capture_output=True, timeout=60)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["podman", "rm", "-f", "assisted-installer"], capture_output=True, timeout=60)
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True, timeout=60)


@needs_podman
def test_present_image_runs_the_installer_container_and_reports_its_exit(local_installer_image: str) -> None:
    step = InstallStep()
    result = step.run(step.parse_args([json.dumps(go_request(installer_image=local_installer_image))]), ctx())
    # No pull was needed, and podman's own failure here (no journal socket to mount, or runc refused its
    # rlimits) is the reply: its exit code and stderr, as the Go agent reports the installer container's.
    assert result.exit_code not in (0, 2, -1), result
    assert "Error" in result.error and "pull" not in result.error
    stop = StopInstallationStep()
    stop.parse_args([])
    stopped = stop.run(None, ctx())
    assert stopped.exit_code == 0 and stopped.output.strip() in ("", "assisted-installer")


@needs_podman
def test_stop_installation_without_a_container_succeeds() -> None:
    subprocess.run(["podman", "rm", "-f", "assisted-installer"], capture_output=True, timeout=60)
    step = StopInstallationStep()
    step.parse_args([])
    result = step.run(None, ctx())
    assert (result.exit_code, result.output, result.error) == (0, "", "")
