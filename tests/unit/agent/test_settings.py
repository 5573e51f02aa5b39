"""The agent's settings table (agent.settings): --help, the defaults, the README and docs/settings.md all agree
with it, it resolves with the documented precedence, and no module reads a setting from, or writes one to, the
environment behind its back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig
from agent.parsers import build_config, daemon_parser, go_style, quick_daemon_args
from agent.settings import PROXY_VARS, TABLE, markdown
from agent.step_cli import step_parser
from common.errors import ConfigError, StepError
from reference_service import settings as service_settings

ROOT = Path(__file__).parents[3]
ID_A, ID_B = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
#: AgentConfig fields no person sets: the program fills them (agent step turns progress on; proxies are
#: agent.conf's proxy variables, which are the environment's and not settings of their own).
FILLED_BY_THE_PROGRAM = {"progress", "proxies"}
#: Names in the docs that are no program's settings, and why.
NOT_AGENT_SETTINGS = {
    "AGENT_DOCKER_IMAGE": "the real service's variable",
    "AGENT_IMAGE": "a placeholder of the systemd unit templates",
    "AGENT_IMAGE_CACHE": "container/build.sh's cache directory",
    "AGENT_HOST_PID": "what the launcher hands the runner container's podman (agent.launcher.runner_env)",
    "AGENT_VERSION": "agent.conf's key for --agent-version",
    "AGENT_TRACEBACK": "read by common.usage when a failure is shown, the resolution's own included",
    "AGENT_IMPL": "the Go peer suite harness's choice of agent (../shared/peer-suites/go-subsystem)",
}


def parse(argv: list[str]) -> AgentConfig:
    return build_config(daemon_parser().parse_args(go_style(argv)), env={"AGENT_CONFIG": "/nonexistent"})


def test_help_shows_every_flag_and_variable_of_the_table() -> None:
    daemon, step = daemon_parser().format_help(), step_parser().format_help()
    for s in TABLE:
        if s.flag:
            assert s.flag in daemon, s.flag
            assert (s.flag in step) == (s.where == "all"), s.flag
        if s.env:
            assert s.env in daemon, s.env


def test_agentconfig_has_each_setting_with_the_tables_default() -> None:
    defaults = AgentConfig()
    declared = {s.name for s in TABLE}
    assert set(AgentConfig._fields) - declared == FILLED_BY_THE_PROGRAM
    for s in TABLE:
        assert getattr(defaults, s.name) == s.default, s.name
    resolved = build_config(daemon_parser().parse_args([]), env={"AGENT_CONFIG": "/nonexistent"})
    assert resolved == defaults._replace(conf_path="/nonexistent")


def test_a_flag_wins_over_agent_conf_which_wins_over_the_environment(tmp_path: Path) -> None:
    conf = tmp_path / "agent.conf"
    conf.write_text("URL=http://conf:1\nHOST_ROOT=/from-conf\nPULL_SECRET_TOKEN=conf-token\nHTTPS_PROXY=http://p:3\n")
    ns = daemon_parser().parse_args(go_style(["-url", "http://flag:1", "--config", str(conf), "-force-id", ID_A]))
    env = {"DRY_HOST_ID": ID_B, "DRY_FORCED_HOSTNAME": "from-env", "PULL_SECRET_TOKEN": "env-token"}
    cfg = build_config(ns, env=env)
    assert (cfg.url, cfg.host_root, cfg.force_id, cfg.force_hostname) == ("http://flag:1", "/from-conf", ID_A,
                                                                          "from-env")
    assert cfg.token == "env-token", "the token: the environment's before agent.conf's, as the Go agent"
    assert cfg.proxies == {"HTTPS_PROXY": "http://p:3"}
    assert build_config(ns, env={"HTTPS_PROXY": "http://mine:1"}).proxies == {}, "the environment's proxy wins"


def test_dry_run_is_on_when_the_flag_or_dry_enable_says_so() -> None:
    ns = daemon_parser().parse_args([])
    assert build_config(ns, env={"AGENT_CONFIG": "/nonexistent", "DRY_ENABLE": "true"}).dry_run is True
    assert build_config(ns, env={"AGENT_CONFIG": "/nonexistent", "DRY_ENABLE": "no"}).dry_run is False
    assert parse(["--dry-run"]).dry.enabled and parse(["--dry-run", "--force-id", ID_A]).dry.forced_host_id == ID_A


def test_the_state_directory_has_one_meaning() -> None:
    """AGENT_STATE_DIR="" once meant "keep none" to the daemon and "the default" to logs-gather and reboot."""
    ns = daemon_parser().parse_args([])
    assert build_config(ns, env={"AGENT_CONFIG": "/nonexistent"}).state_dir == "/var/lib/assisted-agent"
    assert build_config(ns, env={"AGENT_CONFIG": "/nonexistent", "AGENT_STATE_DIR": ""}).state_dir == ""
    from steps.reboot import marker_path

    with pytest.raises(StepError, match="no state directory"):
        marker_path(AgentConfig(reboot_dry_run=True, state_dir=""))
    assert marker_path(AgentConfig(state_dir="/s")) == Path("/s/reboot-requests.jsonl")


def test_malformed_values_are_named_by_their_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--interval: 'soon' is not a number"):
        parse(["--interval", "soon"])
    conf = tmp_path / "agent.conf"
    conf.write_text("INSECURE=maybe\n")
    with pytest.raises(ConfigError, match="--insecure: 'maybe' is not a boolean"):
        parse(["--config", str(conf)])
    knobs = {"AGENT_CONFIG": "/nonexistent", "AGENT_CHRONYC_TIMEOUT": "soon", "AGENT_VIRTUAL_NICS": "maybe"}
    cfg = build_config(daemon_parser().parse_args([]), env=knobs)
    assert (cfg.chronyc_timeout, cfg.virtual_nics) == (0.0, False), "the knobs' variables stay lenient"


def _documented_names() -> set[str]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pattern = r"\b(?:AGENT|DRY|REFERENCE_SERVICE)_[A-Z][A-Z0-9_]*"
    return {m for path in texts for m in re.findall(pattern, path.read_text())}


def test_the_docs_name_only_declared_variables() -> None:
    tables = (*TABLE, *service_settings.TABLE)
    declared = {s.env for s in tables if s.env} | {s.key for s in tables if s.key}
    unknown = _documented_names() - declared - set(NOT_AGENT_SETTINGS)
    assert not unknown, f"variables in README.md/docs that no settings table declares: {sorted(unknown)}"


def test_docs_settings_md_is_generated_from_the_tables() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    assert markdown() in text, "regenerate the table: python -c 'import agent.settings as s; print(s.markdown())'"
    assert service_settings.markdown() in text, "regenerate it from reference_service.settings.markdown()"


_WRITES = re.compile(r"os\.environ\[[^]]+\]\s*=|os\.environ\.(update|setdefault|pop)\(|os\.putenv|del os\.environ")
_READS = re.compile(r"os\.environ\.get\(\s*\"?([A-Za-z_.]+)|os\.getenv\(\s*\"?([A-Za-z_.]+)"
                    r"|\"([A-Z_]+)\" in os\.environ")
#: The writes of os.environ left, and why they are not a channel of settings.
WRITES = {
    "agent/fork_server.py": "a forked step process takes the environment the runner built for it, as exec would give "
                            "it: what the step's own children inherit (agent.runner); FORK_SERVER_FD is removed so "
                            "that no step inherits it",
}
#: Every read of the environment left in the agent's code, and why it is not a setting.
READS = {
    ("agent/notify.py", "NOTIFY_SOCKET"): "systemd's protocol with this process",
    ("agent/notify.py", "WATCHDOG_USEC"): "systemd's protocol with this process",
    ("agent/notify.py", "WATCHDOG_PID"): "systemd's protocol with this process",
    ("agent/step_process.py", "PARENT_ENV"): "the daemon's pid, armed before the request is read; the step's "
                                             "children inherit it (agent.runner)",
    ("agent/fork_server.py", "PARENT_ENV"): "the daemon's pid, which the fork server watches",
    ("reference_service/spec.py", "ASSISTED_SPEC"): "a developer's copy of the API spec, read where the spec is "
                                                    "loaded (by tests and both programs' spec checks)",
    ("reference_service/lab.py", "INSIDE_ENV"): "the lab re-runs itself inside its network namespace (ip netns "
                                                "exec) and marks that run so: a process's own re-exec, no setting",
    ("common/usage.py", "AGENT_TRACEBACK"): "how a failure is shown, the resolution's own included",
    ("common/host.py", "PATH"): "which programs this process can run",
    ("common/service_client.py", "name"): "the proxy and CA bundle variables requests honours: whether the first "
                                          "register may go out before requests is loaded",
    ("common/argparser.py", "COLUMNS"): "the terminal's width, as shutil.get_terminal_size reads it",
    ("steps/reboot.py", "PYTEST_CURRENT_TEST"): "pytest's, inherited by every process a test starts: the last "
                                                "guard against rebooting the test machine",
}


@pytest.mark.parametrize("package", ["agent", "common", "steps", "inventory", "reference_service", "rules", "swarm"])
def test_the_environment_is_not_a_channel(package: str) -> None:
    for path in sorted((ROOT / package).rglob("*.py")):
        text = path.read_text()
        rel = str(path.relative_to(ROOT))
        assert rel in WRITES or not _WRITES.search(text), f"{rel} writes os.environ: hand the value on instead"
        for match in _READS.finditer(text):
            name = next(g for g in match.groups() if g)
            assert (rel, name) in READS, f"{rel} reads {name} from the environment: declare it in a settings table"


def test_the_example_agent_conf_names_only_declared_keys() -> None:
    text = (ROOT / "systemd" / "agent.conf.example").read_text()
    keys = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    declared = {s.key for s in TABLE if s.key} | set(PROXY_VARS)
    assert keys and keys <= declared, sorted(keys - declared)


#: Words a daemon command line is made of, the awkward ones included (abbreviations, values that look like
#: flags, a boolean's value as the next word, --help).
_WORDS = ["--url", "--url=http://h:1", "http://h:1", "--infra-env-id", "11111111-1111-1111-1111-111111111111",
          "--insecure", "--insecure=false", "true", "--interval", "5", "-5", "--interval=0.5", "--log-level",
          "debug", "loud", "--log-level=error", "--with-stdout-logging", "--with-journal-logging=false", "--ur",
          "--host-id=", "--config", "/etc/x.conf", "--help", "--version", "--dry-run", "x", "--", "-url", "-insecure"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=8))
def test_the_daemons_quick_parse_agrees_with_argparse_or_leaves_it_to_argparse(words: list[str]) -> None:
    """The daemon parses its command line by hand when it is plain (agent.parsers.quick_daemon_args: argparse was
    a tenth of the CPU before the first register); whatever it reads, argparse reads the same."""
    argv = go_style(words)
    quick = quick_daemon_args(argv)
    if quick is None:
        return
    assert quick == vars(daemon_parser().parse_args(argv))


def test_the_discovery_images_command_line_is_parsed_without_argparse() -> None:
    argv = go_style(["--url", "http://s:8090", "--infra-env-id", "11111111-1111-1111-1111-111111111111",
                     "--agent-version", "quay.io/a/b:1", "-insecure=true", "--interval", "5",
                     "--with-journal-logging=false", "--with-stdout-logging=true"])
    quick = quick_daemon_args(argv)
    assert quick is not None and quick == vars(daemon_parser().parse_args(argv))
    assert build_config(quick) == build_config(daemon_parser().parse_args(argv))
