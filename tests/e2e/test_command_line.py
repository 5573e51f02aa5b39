"""Both command lines as a person meets them: --version, --list, errors, completion, progress on a terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import __version__
from common import progress

BIN = Path(sys.executable).parent
AGENT = str(BIN / "agent")
SERVICE = str(BIN / "assisted-reference-service")


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def in_pty(argv: list[str], columns: int = 80, timeout: float = 60) -> str:
    """What a terminal of ``columns`` columns shows of argv's stdout and stderr."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else in the forked copy of pytest
        os.environ["COLUMNS"] = str(columns)
        os.execv(argv[0], argv)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_version_on_both_programs() -> None:
    assert run(AGENT, "--version").stdout.strip() == f"agent {__version__}"
    out = run(SERVICE, "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"assisted-reference-service {__version__}"


def test_step_list_names_each_step_its_purpose_and_origin(sample_plugins: Path) -> None:
    out = run(AGENT, "step", "--list")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert out.stdout.splitlines()[0].split() == ["NAME", "FROM", "PURPOSE"]
    assert "the host's hardware and network picture" in rows["inventory"]
    assert rows["inventory"].split()[1:3] == ["built", "in"]
    assert "stream an OS image onto the installation disk" in rows["write-image"]  # a package's own docstring
    assert "echoes its one JSON object argument back" in rows["sample-echo"]
    assert "plugin sample-steps 1.0" in rows["sample-echo"]
    assert "FAILS TO LOAD" in rows["sample-broken"]  # a broken plugin is shown, not fatal to the listing
    assert {"write-image", "installation-disk-speed-check", "logs-gather"} <= set(rows)


def test_step_list_fits_the_terminal() -> None:
    screen = in_pty([AGENT, "step", "--list"], columns=80)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert len(lines) > 15 and all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert any(line.startswith("inventory ") and " built in " in line for line in lines)


def test_step_list_in_a_pipe_is_not_padded_to_the_longest_purpose(sample_plugins: Path) -> None:
    """Piped (| less, | grep), each row ends where its purpose ends: nothing is padded out to column 218."""
    out = run(AGENT, "step", "--list")
    lines = out.stdout.splitlines()
    longest = max(len(line) for line in lines)
    assert all(line == line.rstrip() for line in lines)
    assert sum(1 for line in lines if len(line) == longest) == 1  # only the row with the longest purpose


def test_step_help_says_what_the_step_takes_with_an_example_that_works() -> None:
    out = run(AGENT, "step", "free-network-addresses", "--help")
    assert out.returncode == 0, out.stderr
    assert "agent step free-network-addresses '[\"10.0.0.0/24\"]'" in out.stdout
    assert "each one shell word" in out.stdout and "/22 or longer" in out.stdout
    assert run(AGENT, "step", "nosuch-step", "--help").returncode == 2


def test_every_help_example_passes_its_steps_argument_check() -> None:
    from agent.step_help import EXAMPLES, _accepts
    from steps import registry

    assert set(EXAMPLES) <= set(registry.available())
    bad = [name for name, example in EXAMPLES.items() if not _accepts(name, list(example))]
    assert bad == []


@pytest.mark.netns
def test_the_go_binarys_argument_form_works(tmp_path: Path) -> None:
    """free_addresses '["10.0.0.0/24"]' in the Go image; here the same words after 'agent step', and the one
    JSON list of all the arguments (the form of --wire) too."""
    from tests.support.netns import Network

    with Network() as net:
        host = net.add_host()
        network = host.ipv4.rsplit(".", 1)[0] + ".0/24"
        for argv in ([json.dumps([network])], [json.dumps([json.dumps([network])])]):
            proc = host.run([AGENT, "step", "free-network-addresses", *argv])
            assert proc.returncode == 0, proc.stderr
            (entry,) = json.loads(proc.stdout)
            assert entry["network"] == network and host.ipv4 not in entry["free_addresses"]


def one_line_error(out: subprocess.CompletedProcess[str], prog: str, status: int, message: str) -> None:
    """The contract of every error: status 2 or 1, one error line, at most one hint line, no traceback."""
    lines = out.stderr.splitlines()
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr and 1 <= len(lines) <= 2, out.stderr
    assert lines[0].startswith(f"{prog}: error: ") and re.search(message, lines[0]), lines[0]
    assert len(lines) == 1 or lines[1].startswith(f"{prog}: hint: ")


@pytest.mark.parametrize("argv,prog,status,message", [
    (["--bogus"], "agent", 2, "unrecognized arguments: --bogus"),
    (["stpe"], "agent", 2, "no subcommand 'stpe'"),
    (["--url", "x", "--infra-env-id", "7c6f5a3e-2b1d-4c8e-9f0a-1b2c3d4e5f60"], "agent", 2, "not an http"),
    (["--url", "http://127.0.0.1:1", "--insecure=maybe"], "agent", 2, "--insecure"),
    (["--config", "/nonexistent/agent.conf"], "agent", 2, "/nonexistent/agent.conf"),
    (["step"], "agent step", 2, "which step"),
    (["step", "nosuch-step"], "agent step", 2, "no step named 'nosuch-step'"),
    (["step", "inventory", "--log-level", "loud"], "agent step", 2, "--log-level"),
    (["inventory", "--format", "yaml"], "agent inventory", 2, "invalid choice: 'yaml'"),
    (["inventory", "--root", "/nonexistent"], "agent inventory", 2, "no such directory"),
    (["record-host"], "agent record-host", 2, "required: dir"),
    (["record-host", "/etc"], "agent record-host", 2, "not an empty directory"),
    (["completion", "fish"], "agent completion", 2, "invalid choice: 'fish'"),
])
def test_every_agent_error_is_one_line_and_a_hint(argv: list[str], prog: str, status: int, message: str) -> None:
    one_line_error(run(AGENT, *argv), prog, status, message)


def test_unknown_step_names_the_closest() -> None:
    out = run(AGENT, "step", "invntory")
    one_line_error(out, "agent step", 2, "no step named 'invntory'")
    assert out.stderr.splitlines()[1] == ("agent step: hint: did you mean 'inventory'? "
                                          "'agent step --list' shows every step")


def test_a_failed_step_exits_1_with_its_error(sample_plugins: Path) -> None:
    out = run(AGENT, "step", "sample-echo", '{"nomessage": 1}')
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert re.search(r"agent step: sample-echo: exit code -1: .*message", out.stderr)


def test_unexpected_errors_are_one_line_unless_asked(tmp_path: Path) -> None:
    """A bug is one line with a hint; AGENT_TRACEBACK=1 shows where it is."""
    from common.usage import run_main

    def bug() -> int:
        raise TypeError("boom")

    err = io.StringIO()
    real, sys.stderr = sys.stderr, err
    try:
        assert run_main("agent", bug) == 1
    finally:
        sys.stderr = real
    assert err.getvalue().splitlines() == [
        "agent: error: unexpected TypeError: boom",
        "agent: hint: this is a bug; rerun with AGENT_TRACEBACK=1 for the traceback and report it"]
    os.environ["AGENT_TRACEBACK"] = "1"
    try:
        with pytest.raises(TypeError):
            run_main("agent", bug)
    finally:
        del os.environ["AGENT_TRACEBACK"]


def bash_complete(script: Path, words: str) -> list[str]:
    """What bash offers for ``words`` after sourcing the generated completion script."""
    parts = words.split(" ")
    shell = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in parts)})\nCOMP_CWORD={len(parts) - 1}\n"
             f"COMP_LINE={words!r}\nCOMP_POINT=${{#COMP_LINE}}\n_shtab_agent agent\n"
             "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    out = subprocess.run(["bash", "--norc", "-c", shell], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_bash_completion_generated_from_the_parsers(tmp_path: Path) -> None:
    out = run(AGENT, "completion", "bash")
    assert out.returncode == 0, out.stderr
    script = tmp_path / "agent.bash"
    script.write_text(out.stdout)
    assert {"step", "inventory", "record-host", "completion"} <= set(bash_complete(script, "agent "))
    assert bash_complete(script, "agent step inv") == ["inventory"]
    assert "write-image" in bash_complete(script, "agent step wr")
    assert {"--format", "--root"} <= set(bash_complete(script, "agent inventory --"))
    assert set(bash_complete(script, "agent inventory --format ")) == {"json", "table"}
    assert "--infra-env-id" in bash_complete(script, "agent --inf")
    (tmp_path / "somedir").mkdir()
    assert bash_complete(script, f"agent inventory --root {tmp_path}/som") == [f"{tmp_path}/somedir"]


def test_zsh_completion_is_generated() -> None:
    out = run(AGENT, "completion", "zsh")
    assert out.returncode == 0 and out.stdout.startswith("#compdef agent")
    assert "write-image" in out.stdout and "--infra-env-id" in out.stdout


def test_help_is_complete_enough_for_a_man_page() -> None:
    text = run(AGENT, "--help").stdout
    for section in ("subcommands", "exit status:", "environment:", "files:", "examples:", "PULL_SECRET_TOKEN",
                    "agent step --list", "agent completion bash", "--infra-env-id"):
        assert section in text, section


def test_progress_on_a_terminal_is_one_line_rewritten(sample_plugins: Path) -> None:
    screen = in_pty([AGENT, "step", "sample-progress", '{"bytes": 104857600}'])
    assert re.search(r"\rcopying: [\d.]+ MiB / 100\.0 MiB +\d+%  [\d.]+ MiB/s  \d+:\d\d left\x1b\[K", screen)
    assert re.search(r"\rcopying: done, 100\.0 MiB in 0:0\d \([\d.]+ MiB/s\)\x1b\[K\r?\n", screen)
    assert json.loads(screen[screen.index("{"):]) == {"copied": 104857600}  # the reply, apart from the progress


def test_progress_without_a_terminal_is_plain_lines_and_never_in_the_reply(sample_plugins: Path) -> None:
    out = run(AGENT, "step", "--wire", "sample-progress", '{"bytes": 1000}')
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr and "\x1b" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("copying: ")]
    assert len(lines) >= 10 and lines[-1].startswith("copying: done, 1000 B in")
    assert json.loads(json.loads(out.stdout)["output"]) == {"copied": 1000}


def test_progress_is_silent_outside_agent_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon never sets the progress setting: a step's meter there prints nothing, wherever stderr goes."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.meter("writing", 10) as shown:
        shown.update(10)
    assert err.getvalue() == ""
    with progress.meter("writing", 10, show=True) as shown:
        shown.update(10)
    assert err.getvalue().splitlines()[-1].startswith("writing: done, 10 B in")


def test_meter_lines_and_time_left() -> None:
    now = [0.0]
    out = io.StringIO()
    shown = progress.Meter("writing image", 300 << 20, stream=out, tty=False, clock=lambda: now[0])
    for _ in range(30):
        now[0] += 0.1
        shown.add(10 << 20)
    shown.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "writing image: 30.0 MiB / 300.0 MiB   10%  100.0 MiB/s  0:03 left"
    assert len(lines) == 11 and lines[-1] == "writing image: done, 300.0 MiB in 0:03 (100.0 MiB/s)"


#: Runs the service's main() with the `service` extra's packages made unimportable, as on an agent-only install.
WITHOUT_EXTRA = """
import sys
for name in ("starlette", "uvicorn", "yaml", "jsonschema"):
    sys.modules[name] = None  # import of it now fails as if it were not installed
from reference_service.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_service_help_and_version_need_no_extra_and_say_which_pip_install_fixes_it() -> None:
    out = run(sys.executable, "-c", WITHOUT_EXTRA, "--help")
    assert out.returncode == 0 and "--tls-cert" in out.stdout, out.stderr
    out = run(sys.executable, "-c", WITHOUT_EXTRA, "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"assisted-reference-service {__version__}"
    out = run(sys.executable, "-c", WITHOUT_EXTRA, "--port", "0")
    one_line_error(out, "assisted-reference-service", 1,
                   r"needs the 'service' extra: (starlette|uvicorn) is not installed")
    assert out.stderr.splitlines()[1] == "assisted-reference-service: hint: pip install 'assisted-agent[service]'"


@pytest.mark.parametrize("argv,status,message", [
    (["--bogus"], 2, "unrecognized arguments: --bogus"),
    (["--tls-cert", "/nonexistent"], 2, "--tls-cert and --tls-key go together"),
    (["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"], 2, "--tls-cert /nonexistent: no such file"),
    (["--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"], 2, "cannot load them"),
    (["--port", "70000"], 2, "not a port"),
    (["--port", "eighty"], 2, "invalid int value: 'eighty'"),
    (["--body-stall-seconds", "0"], 2, "--body-stall-seconds 0: not a positive number of seconds"),
    (["--body-stall-seconds", "nan"], 2, "--body-stall-seconds nan: not a positive number of seconds"),
    (["--auth", "password"], 2, "invalid choice: 'password'"),
    (["--db", "/nonexistent/state.db"], 2, "directory /nonexistent does not exist"),
    (["--os-image", "/nonexistent.raw"], 2, "--os-image /nonexistent.raw: no such file"),
    (["--db", "/etc"], 1, "cannot open the database"),
])
def test_every_service_error_is_one_line_and_a_hint(argv: list[str], status: int, message: str) -> None:
    one_line_error(run(SERVICE, *argv), "assisted-reference-service", status, message)


def test_service_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = run(SERVICE, "--port", str(port), "--db", str(tmp_path / "db"))
    one_line_error(out, "assisted-reference-service", 1, f"cannot listen on 127.0.0.1:{port}")


def test_service_environment_garbage_is_a_usage_error() -> None:
    out = run(SERVICE, env={"AGENT_INVENTORY_MAX_SIZE": "lots"})
    one_line_error(out, "assisted-reference-service", 2, "AGENT_INVENTORY_MAX_SIZE: 'lots' is not a whole number")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices")
def test_write_image_shows_its_progress_on_a_terminal(tmp_path: Path) -> None:
    from tests.support.install_images import MIB, loop_device, sha256_file

    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(48 * MIB))  # a GPT disk image, written byte for byte (no Ignition)
    subprocess.run(["sfdisk", "-q", str(image)], input="label: gpt\n,,\n", text=True, check=True, timeout=30)
    with loop_device(96 * MIB) as dev:
        request = {"image_url": f"file://{image}", "target_device": dev.path, "image_sha256": sha256_file(image),
                   "image_size": 48 * MIB}
        screen = in_pty([AGENT, "step", "write-image", json.dumps(request)], timeout=120)
    assert re.search(rf"\rwriting {dev.path}: [\d.]+ MiB / [\d.]+ MiB +\d+%", screen), screen[-2000:]
    assert re.search(rf"\rwriting {dev.path}: done, [\d.]+ MiB in \d+:\d\d", screen), screen[-2000:]
    reply = json.loads(screen[screen.index("{"):])
    assert "exit code" not in screen and reply["bytes_written"] == 48 * MIB


def test_waiting_keeps_the_elapsed_time_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image pull says nothing of its size: the meter shows the time it takes, and how it ended."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "LINE_EVERY", 0.1)
    with progress.waiting("pulling quay.io/x/y:1", show=True):
        time.sleep(0.5)
    lines = err.getvalue().splitlines()
    assert "pulling quay.io/x/y:1: 0:00 elapsed" in lines
    assert re.fullmatch(r"pulling quay.io/x/y:1: done in 0:0\d", lines[-1])
    with pytest.raises(RuntimeError), progress.waiting("pulling z", show=True):
        raise RuntimeError("refused")
    assert err.getvalue().splitlines()[-1] == "pulling z: stopped in 0:00"


def test_service_names_a_missing_distribution_of_the_extra(tmp_path: Path) -> None:
    """What the installed metadata says the extra needs is checked by distribution, before any import."""
    fake = tmp_path / "assisted_agent-0.1.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: assisted-agent\nVersion: 0.1.0\n"
                                   "Provides-Extra: service\n"
                                   'Requires-Dist: no-such-dist-xyz>=1; extra == "service"\n')
    code = (f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
            "from reference_service.cli import main\nsys.exit(main(sys.argv[1:]))")
    out = run(sys.executable, "-c", code, "--port", "0")
    one_line_error(out, "assisted-reference-service", 1, "needs the 'service' extra: no-such-dist-xyz is not installed")


def test_agent_step_inventory_as_the_readme_shows_it_needs_no_argument() -> None:
    out = run(AGENT, "step", "inventory")
    assert out.returncode == 0, out.stderr
    assert "cpu" in json.loads(out.stdout) and "hostname" in json.loads(out.stdout)
