"""The host agent's reading of next_step_runner_command, the podman line it builds, and the image's entry names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.entrypoints import main as entry_main
from agent.launcher import URL_ENV, container_mode, parse_runner_command, runner_argv, runner_env
from agent.parsers import build_config, daemon_parser, go_style
from common.answers import RunnerRequest
from common.errors import ConfigError
from common.limits import DEFAULT_DELAY_ON_ERROR
from tests.support.paths import ROOT

HOST = "6fde0f02-fb37-b620-d208-51bf93374c7d"
INFRA = "0ba7a0fa-2a23-4a4b-9e3c-2c5a2b5f7a10"
IMAGE = "quay.io/edge-infrastructure/assisted-installer-agent:v2"


def answer(fields: Any, retry: Any = 30) -> dict[str, Any]:
    return {"id": HOST, "next_step_runner_command": {"command": "", "args": [json.dumps(fields)],
                                                     "retry_seconds": retry}}


def test_a_valid_command_gives_the_image_and_the_ids() -> None:
    request, delay, problem = parse_runner_command(
        answer({"agent_version": IMAGE, "host_id": HOST, "infra_env_id": INFRA.upper()}))
    assert request == RunnerRequest(IMAGE, HOST, INFRA) and delay == 30 and problem == ""


@pytest.mark.parametrize("response", [
    {"id": HOST},
    {"next_step_runner_command": "podman run"},
    {"next_step_runner_command": {"args": []}},
    {"next_step_runner_command": {"args": [["not", "a", "string"]]}},
    {"next_step_runner_command": {"args": ["{not json"]}},
    {"next_step_runner_command": {"args": ["[1, 2]"]}},
    answer({"agent_version": "--privileged", "host_id": HOST, "infra_env_id": INFRA}),
    answer({"agent_version": "image name with spaces", "host_id": HOST, "infra_env_id": INFRA}),
    answer({"agent_version": IMAGE, "host_id": "../../etc", "infra_env_id": INFRA}),
    answer({"agent_version": IMAGE, "host_id": HOST}),
    answer({"agent_version": 7, "host_id": HOST, "infra_env_id": INFRA}),
    "garbage",
])
def test_anything_else_is_a_reason_not_a_crash(response: Any) -> None:
    request, delay, problem = parse_runner_command(response)
    assert request is None and problem and delay > 0


@pytest.mark.parametrize("retry", [None, 0, -5, True, "30", 10**12])
def test_retry_seconds_is_bounded(retry: Any) -> None:
    _, delay, _ = parse_runner_command(answer({"agent_version": "x"}, retry))
    assert 0 < delay <= 24 * 3600
    if retry in (None, 0, -5, True, "30"):
        assert delay == DEFAULT_DELAY_ON_ERROR


def test_the_podman_line_is_the_go_agents_with_the_host_at_slash_host() -> None:
    cfg = AgentConfig(url="https://svc:8090", infra_env_id=INFRA, insecure=True, cacert="/etc/ca.pem")
    argv = runner_argv(cfg, RunnerRequest(IMAGE, HOST, INFRA), exists=lambda p: p != "/run/media")
    assert argv[:2] == ["podman", "run"]
    for flag in ("--privileged", "--pid=host", "--uts=host", "--net=host", "--rm"):
        assert flag in argv
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert "/dev:/dev:rw" in mounts and "/:/host:rslave" in mounts and "/etc/ca.pem:/etc/ca.pem:ro" in mounts
    assert not any(m.startswith("/run/media") for m in mounts), "a missing source would stop podman"
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert {"PULL_SECRET_TOKEN", "CONTAINERS_CONF", "HTTPS_PROXY", "no_proxy", "AGENT_HOST_PID"} <= set(envs)
    assert not [e for e in envs if "=" in e], "values come from the environment, never the command line"
    tail = argv[argv.index(IMAGE):]
    assert tail == [IMAGE, "next_step_runner", "--url", "https://svc:8090", "--infra-env-id", INFRA,
                    "--host-id", HOST, "--agent-version", IMAGE, "--insecure=true", "--host-root", "/host",
                    "--cacert", "/etc/ca.pem"]


def test_a_url_password_reaches_the_runner_through_the_environment_not_the_command_line() -> None:
    """Every user reads every process's /proc/PID/cmdline; only its owner its environ. The runner gets the same
    URL (issue 26: the launcher put ``--url https://user:password@...`` on podman's command line)."""
    url = "https://agent:s3cret-pw@svc:8090/"
    cfg = AgentConfig(url=url, infra_env_id=INFRA, token="tok")
    argv = runner_argv(cfg, RunnerRequest(IMAGE, HOST, INFRA), exists=lambda p: True)
    assert not [a for a in argv if "s3cret-pw" in a], argv
    assert URL_ENV in [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    env = runner_env(cfg)
    assert env[URL_ENV] == url
    # what next_step_runner resolves in the container from the line's tail and what podman hands it (--env)
    tail = argv[argv.index("next_step_runner") + 1:]
    runner = build_config(daemon_parser().parse_args(go_style(tail)),
                          env={"AGENT_CONFIG": "/nonexistent", URL_ENV: env[URL_ENV], "PULL_SECRET_TOKEN": "tok"})
    assert runner.url == url and runner.host_id == HOST and runner.infra_env_id == INFRA
    # without a password the line stays the Go agent's
    plain = runner_argv(AgentConfig(url="https://svc:8090", infra_env_id=INFRA), RunnerRequest(IMAGE, HOST, INFRA))
    assert "--url" in plain and URL_ENV not in plain


def test_a_pip_installed_agent_polls_itself_unless_told() -> None:
    assert container_mode("") is False
    assert container_mode("container") is True
    with pytest.raises(ConfigError):
        container_mode("sideways")


def test_unknown_entry_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry_main([], name="/usr/local/bin/rm") == 2
    assert "unknown binary name rm" in capsys.readouterr().err


def test_free_addresses_takes_one_json_argument(tmp_path: Path) -> None:
    link = tmp_path / "free_addresses"
    link.symlink_to(ROOT / "container" / "agent_main.py")
    proc = subprocess.run([sys.executable, str(link), "a", "b"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "expected one JSON argument" in proc.stderr


def test_logs_sender_requires_the_go_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry_main(["-url", "http://127.0.0.1:1", "-host-id", HOST], name="logs_sender") == 2
    assert "-cluster-id" in capsys.readouterr().err


@pytest.mark.skipif(not (shutil.which("systemd-analyze") and shutil.which("podman")),
                    reason="needs systemd-analyze and podman")
def test_systemd_accepts_the_stock_discovery_unit(tmp_path: Path) -> None:
    text = (ROOT / "systemd" / "discovery-agent.service").read_text()
    assert "ExecStartPre=podman run --privileged --rm -v /usr/local/bin:/hostbin {{AGENT_IMAGE}} cp /usr/bin/agent " \
           "/hostbin" in text
    assert "ExecStart=/usr/local/bin/agent --url {{SERVICE_URL}} --infra-env-id {{INFRA_ENV_ID}} --agent-version " \
           "{{AGENT_IMAGE}} --insecure={{INSECURE}}" in text
    values = {"AGENT_IMAGE": "localhost/assisted-agent:latest", "SERVICE_URL": "http://10.0.0.1:8090",
              "INFRA_ENV_ID": INFRA, "PULL_SECRET_TOKEN": "token", "INSECURE": "false"}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    text = text.replace("/usr/local/bin/agent", str(Path(sys.executable).parent / "agent"))
    assert "{{" not in text
    unit = tmp_path / "agent.service"
    unit.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "agent.service" not in proc.stderr, proc.stderr
