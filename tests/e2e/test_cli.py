"""The command line: Go-style flags, agent.conf, and one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from agent.config import read_conf
from agent.parsers import build_config, daemon_parser, go_style
from common.errors import ConfigError
from tests.support.service import BIN

IE = "7c6f5a3e-2b1d-4c8e-9f0a-1b2c3d4e5f60"


def parse(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    return daemon_parser().parse_args(go_style(argv))


def test_go_style_flags_as_agent_service_passes_them(tmp_path: Path) -> None:
    ns = parse(["-url", "https://svc:8090", "--infra-env-id", IE, "--agent-version=quay.io/a/b:v1",
                "--insecure=false", "-interval=5"])
    cfg = build_config(ns, env={"PULL_SECRET_TOKEN": "tok", "AGENT_CONFIG": str(tmp_path / "none")})
    assert (cfg.url, cfg.infra_env_id, cfg.agent_version, cfg.insecure, cfg.interval) == (
        "https://svc:8090", IE, "quay.io/a/b:v1", False, 5.0)
    assert cfg.token == "tok"
    cfg.validate_for_daemon()


@pytest.mark.parametrize("flag,expected", [(["--insecure"], True), (["--insecure=true"], True),
                                           (["--insecure=1"], True), (["--insecure=F"], False), ([], False)])
def test_insecure_takes_go_booleans(tmp_path: Path, flag: list[str], expected: bool) -> None:
    cfg = build_config(parse(["--url", "http://x", "--infra-env-id", IE, *flag]),
                       env={"AGENT_CONFIG": str(tmp_path / "none")})
    assert cfg.insecure is expected


def test_conf_file_fills_what_flags_leave_out(tmp_path: Path) -> None:
    conf = tmp_path / "agent.conf"
    conf.write_text(f"# comment\nURL=http://from-conf:8090\nINFRA_ENV_ID='{IE}'\nINTERVAL=7\n"
                    "PULL_SECRET_TOKEN=conf-token\nINSECURE=true\n")
    cfg = build_config(parse(["--config", str(conf), "--url", "http://from-flag:1"]), env={})
    assert cfg.url == "http://from-flag:1" and cfg.infra_env_id == IE and cfg.interval == 7.0
    assert cfg.insecure is True and cfg.token == "conf-token"
    cfg = build_config(parse(["--config", str(conf)]), env={"PULL_SECRET_TOKEN": "env-token"})
    assert cfg.token == "env-token"


def test_malformed_conf_line_is_a_clear_error(tmp_path: Path) -> None:
    conf = tmp_path / "agent.conf"
    conf.write_text("URL http://nope\n")
    with pytest.raises(ConfigError, match=r"agent.conf:1: expected KEY=VALUE"):
        read_conf(conf)


@pytest.mark.parametrize("argv,message", [
    ([], "--url is required"),
    (["--url", "ftp://x"], "is not an http(s) URL"),
    (["--url", "http://x"], "--infra-env-id is required"),
    (["--url", "http://x", "--infra-env-id", "nope"], "is not a UUID"),
    (["--url", "http://x", "--infra-env-id", IE, "--interval", "soon"], "is not a number"),
    (["--url", "http://x", "--infra-env-id", IE, "--insecure=maybe"], "is not a boolean"),
    (["--url", "http://x", "--infra-env-id", IE, "--cacert", "/nonexistent.pem"], "no such file"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_command_lines_exit_2_with_one_clear_line(argv: list[str], message: str) -> None:
    proc = subprocess.run([str(BIN / "agent"), *argv], capture_output=True, text=True, timeout=30,
                          env={"AGENT_CONFIG": "/nonexistent", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    first = proc.stderr.splitlines()[0]
    assert first.startswith("agent: error: ") and message in first
    assert proc.stdout == ""


def test_step_subcommand_runs_a_step_and_reports_errors() -> None:
    proc = subprocess.run([str(BIN / "agent"), "step", "no-such-step", "--wire"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    assert '"error": "failed to find action for step type no-such-step"' in proc.stdout
    assert '"exit_code": -1' in proc.stdout
