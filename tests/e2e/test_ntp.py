"""ntp-synchronizer against real chronyd: a time server in one namespace, the host's chronyd in another.

Both daemons run with ``-x`` (the machine clock is never touched), private configs and 0700 socket dirs.
A dnsmasq next to the server gives the server a name (forward and PTR), so the step's name handling is
exercised against a real DNS server; the step runs inside the client namespace, whose only resolver is
that dnsmasq, so no lookup ever leaves the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from common.errors import CommandNotFound, InvalidStepArguments
from common.host import Host
from reference_service import spec
from rules import preinstall
from rules.documents import HostView
from steps.base import StepContext
from steps.ntp_synchronizer import NtpSynchronizerStep, chronyc_argv, parse_sources
from tests.support.service import start_agent, start_service

AGENT = str(Path(sys.executable).parent / "agent")
SERVER_IP, CLIENT_IP, SILENT_IP = "10.231.0.1", "10.231.0.2", "10.231.0.99"
SERVER_NAME = "ntp.apre.test"
MODEL = spec.STEP_OUTPUT_MODELS["ntp-synchronizer"]
CLONE_NEWNET = 0x40000000


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


@dataclass
class NtpLab:
    server_ns: str
    client_ns: str
    client_socket: Path
    client_pid: int

    def run_step(self, ntp_source: str, env: dict[str, str] | None = None, timeout: float = 60) -> dict[str, Any]:
        """Run the step once through the real runner, inside the client namespace; the wire reply."""
        cmd = ["ip", "netns", "exec", self.client_ns, AGENT, "step", "--wire", "ntp-synchronizer",
               json.dumps([json.dumps({"ntp_source": ntp_source})])]
        full_env = {**os.environ, "AGENT_CHRONYC_SOCKET": str(self.client_socket), **(env or {})}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
        assert proc.stdout, proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def sources(self) -> list[str]:
        out = subprocess.run(["chronyc", "-h", str(self.client_socket), "-c", "sources"], capture_output=True,
                             text=True, timeout=10).stdout
        return [line.split(",")[2] for line in out.splitlines()]


def _output(reply: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(reply["output"])
    assert spec.errors(MODEL, out) == []
    return out  # type: ignore[no-any-return]


def _states(reply: dict[str, Any]) -> dict[str, str]:
    return {s["source_name"]: s["source_state"] for s in _output(reply)["ntp_sources"]}


@pytest.fixture
def ntp_lab(tmp_path: Path) -> Iterator[NtpLab]:
    token = uuid.uuid4().hex[:6]
    server_ns, client_ns = f"apre-{token}s", f"apre-{token}c"
    veth_s, veth_c = f"apre{token}s", f"apre{token}c"
    netns_etc = Path("/etc/netns") / client_ns
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _sh("ip", "netns", "add", server_ns)
        _sh("ip", "netns", "add", client_ns)
        _sh("ip", "link", "add", veth_s, "type", "veth", "peer", "name", veth_c)
        _sh("ip", "link", "set", veth_s, "netns", server_ns)
        _sh("ip", "link", "set", veth_c, "netns", client_ns)
        for ns, dev, ip in ((server_ns, veth_s, SERVER_IP), (client_ns, veth_c, CLIENT_IP)):
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        # The client namespace's resolver is the dnsmasq next to the time server (ip netns exec bind-mounts it).
        netns_etc.mkdir(parents=True)
        (netns_etc / "resolv.conf").write_text(f"nameserver {SERVER_IP}\n")
        dirs = {}
        for role in ("server", "client"):
            d = tmp_path / f"apre-chrony-{role}"
            d.mkdir(mode=0o700)
            dirs[role] = d
        (dirs["server"] / "chrony.conf").write_text(
            f"local stratum 8\nallow 10.231.0.0/24\nbindaddress {SERVER_IP}\n"
            f"bindcmdaddress {dirs['server']}/chronyd.sock\npidfile {dirs['server']}/chronyd.pid\n"
        )
        (dirs["client"] / "chrony.conf").write_text(
            f"bindcmdaddress {dirs['client']}/chronyd.sock\npidfile {dirs['client']}/chronyd.pid\n"
            "cmdport 0\nport 0\n"
        )
        for role, ns in (("server", server_ns), ("client", client_ns)):
            log = open(dirs[role] / "chronyd.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, "chronyd", "-d", "-x", "-u", "root", "-f", str(dirs[role] / "chrony.conf")],
                stdout=log, stderr=log))
            log.close()
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", server_ns, "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             f"--listen-address={SERVER_IP}", "--bind-interfaces", f"--host-record={SERVER_NAME},{SERVER_IP}",
             "--pid-file=", "--user=root", "--group=root"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        socket_path = dirs["client"] / "chronyd.sock"
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket_path.exists(), (dirs["client"] / "chronyd.log").read_text()
        while time.monotonic() < deadline:  # dnsmasq answers the client namespace's lookups
            probe = subprocess.run(["ip", "netns", "exec", client_ns, "getent", "hosts", SERVER_NAME],
                                   capture_output=True, timeout=10)
            if probe.returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("dnsmasq did not answer in the client namespace")
        yield NtpLab(server_ns, client_ns, socket_path, procs[1].pid)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for ns in (server_ns, client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        if netns_etc.exists():
            (netns_etc / "resolv.conf").unlink(missing_ok=True)
            netns_etc.rmdir()


def _wait_state(lab: NtpLab, source: str, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    reply: dict[str, Any] = {}
    while time.monotonic() < deadline:
        reply = lab.run_step(source)
        if _states(reply).get(name) == state:
            return reply
        time.sleep(0.5)
    raise AssertionError(f"{name} never became {state}: last reply {reply}")


@pytest.mark.netns
def test_named_source_is_added_once_synced_and_reported_by_name(ntp_lab: NtpLab) -> None:
    assert ntp_lab.sources() == []
    first = ntp_lab.run_step(SERVER_NAME)
    assert first.get("exit_code", 0) == 0 and "error" not in first, first
    # chronyd resolves a name added with "chronyc add" in the background, so the listing right after the add
    # may not have it yet (nor the Go agent's, which lists the same way); later replies do, under its name.
    reply = _wait_state(ntp_lab, SERVER_NAME, SERVER_NAME, "synced")
    # chronyd resolved the name through the namespace's DNS; the step turned the address back into the name.
    assert ntp_lab.sources() == [SERVER_IP]
    assert _output(reply) == {"ntp_sources": [{"source_name": SERVER_NAME, "source_state": "synced"}]}
    # Asked again by name and by address, the source is recognised as present and not added twice.
    again = ntp_lab.run_step(f"{SERVER_NAME},{SERVER_IP}")
    assert "error" not in again, again
    assert ntp_lab.sources() == [SERVER_IP]


@pytest.mark.netns
def test_unreachable_source_reported_unreachable_next_to_a_synced_one(ntp_lab: NtpLab) -> None:
    reply = _wait_state(ntp_lab, f"{SERVER_IP},{SILENT_IP}", SERVER_NAME, "synced")
    # No PTR record for the silent address: it keeps its address as name, as in the Go agent.
    assert _states(reply)[SILENT_IP] == "unreachable"
    assert sorted(ntp_lab.sources()) == sorted([SERVER_IP, SILENT_IP])


@pytest.mark.netns
def test_empty_source_list_only_reports(ntp_lab: NtpLab) -> None:
    reply = ntp_lab.run_step("")
    assert reply.get("exit_code", 0) == 0
    assert _output(reply) == {"ntp_sources": []}
    assert ntp_lab.sources() == []


@pytest.mark.netns
def test_chronyc_that_does_not_answer_times_out_with_the_go_agents_error(ntp_lab: NtpLab) -> None:
    os.kill(ntp_lab.client_pid, signal.SIGSTOP)
    try:
        # chronyc itself gives up after ~7 s against a stopped daemon; a 2 s budget must cut it short.
        reply = ntp_lab.run_step("", env={"AGENT_CHRONYC_TIMEOUT": "2"})
    finally:
        os.kill(ntp_lab.client_pid, signal.SIGCONT)
    assert reply["exit_code"] == -1
    assert reply["error"] == "chronyc was timed out after 2 seconds"
    assert "output" not in reply


@pytest.mark.netns
def test_chronyd_gone_is_an_error_reply(ntp_lab: NtpLab, tmp_path: Path) -> None:
    reply = ntp_lab.run_step("", env={"AGENT_CHRONYC_SOCKET": str(tmp_path / "no-such.sock")})
    assert reply["exit_code"] == -1
    # Go's words byte for byte: "...code %d: <stdout>\n<stderr>" (chronyc says this one on stderr)
    assert reply["error"] == "chronyc exited with non-zero exit code 1: \nCould not open connection to daemon\n"


@pytest.mark.netns
def test_chronyd_stopped_is_the_go_agents_error_byte_for_byte(ntp_lab: NtpLab) -> None:
    """chronyc asks 127.0.0.1:323, where nothing listens in the client namespace: it prints "506 Cannot talk to
    daemon" on stdout and nothing on stderr, so Go's exec error ("exit status 1") follows an empty line."""
    reply = ntp_lab.run_step("", env={"AGENT_CHRONYC_SOCKET": "127.0.0.1"})
    assert (reply["exit_code"], reply["error"]) == (
        -1, "chronyc exited with non-zero exit code 1: 506 Cannot talk to daemon\n\nexit status 1")


def in_netns(ns: str, func: Callable[[], None]) -> None:
    """Run ``func`` in a thread that joined namespace ``ns`` (setns is per thread), so its sockets live there."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            func()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{ns}")
    thread.start()
    thread.join(timeout=240)
    assert not thread.is_alive(), f"work inside {ns} did not finish"
    if failure:
        raise failure[0]


@pytest.mark.netns
def test_unbound_host_reports_sync_to_the_reference_service(ntp_lab: NtpLab, tmp_path: Path) -> None:
    """End to end inside the client namespace: service, agent, the infra-env's extra NTP source, ntp-synced."""

    def scenario() -> None:
        with start_service(tmp_path, netns=ntp_lab.client_ns) as svc:
            ie = svc.create_infra_env(additional_ntp_sources=SERVER_IP)["id"]
            env = {"AGENT_CHRONYC_SOCKET": str(ntp_lab.client_socket)}
            with start_agent(svc.url, ie, netns=ntp_lab.client_ns, env=env, log=tmp_path / "agent.log"):
                def synced(h: dict[str, Any]) -> bool:
                    checks = json.loads(h.get("validations_info") or "{}").get("network", [])
                    return any(c["id"] == "ntp-synced" and c["status"] == "success" for c in checks)

                host = svc.wait_host(ie, synced, timeout=60)
            assert json.loads(host["ntp_sources"]) == [{"source_name": SERVER_NAME, "source_state": "synced"}]
            ntp_replies = svc.replies(host["id"], "ntp-synchronizer")
            assert ntp_replies
            for reply in ntp_replies:
                assert spec.errors(MODEL, json.loads(reply["output"])) == []

    in_netns(ntp_lab.client_ns, scenario)
    assert ntp_lab.sources() == [SERVER_IP]


def test_host_without_chrony_gets_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    step = NtpSynchronizerStep()
    ctx = StepContext(host=Host.at("/"), config=AgentConfig())
    with pytest.raises(CommandNotFound) as err:
        step.run(step.parse_args([json.dumps({"ntp_source": "10.0.0.1"})]), ctx)
    assert "chronyc is not installed" in err.value.describe()
    assert err.value.exit_code == -1


def test_chronyc_socket_comes_from_the_setting() -> None:
    assert chronyc_argv("-c", "sources") == ["chronyc", "-c", "sources"]
    assert chronyc_argv("add", "server", "a", "iburst", socket_path="/run/x/chronyd.sock") == [
        "chronyc", "-h", "/run/x/chronyd.sock", "add", "server", "a", "iburst"]


def test_states_map_to_the_spec_enum() -> None:
    csv = "\n".join([
        "^,*,10.0.0.1,2,6,377,12,0.0,0.0,0.0", "^,+,10.0.0.2,2,6,377,12,0.0,0.0,0.0",
        "^,-,10.0.0.3,2,6,377,12,0.0,0.0,0.0", "^,?,10.0.0.4,0,6,0,-,0.0,0.0,0.0",
        "^,x,10.0.0.5,2,6,377,12,0.0,0.0,0.0", "^,~,10.0.0.6,2,6,377,12,0.0,0.0,0.0",
        "^,!,10.0.0.7,2,6,377,12,0.0,0.0,0.0", "#,*,PPS0,0,4,377,1,0.0,0.0,0.0", "=,+,10.0.0.8,2,6,377,1,0,0,0",
    ])
    got = [(s.address, s.state) for s in parse_sources(csv)]
    assert got == [("10.0.0.1", "synced"), ("10.0.0.2", "combined"), ("10.0.0.3", "not_combined"),
                   ("10.0.0.4", "unreachable"), ("10.0.0.5", "error"), ("10.0.0.6", "variable"),
                   ("10.0.0.7", "error")]


@pytest.mark.parametrize("raw", [
    '{"ntp_source": "a b"}', '{"ntp_source": "-x"}', '{"ntp_source": "ok.example,,b.example"}',
    '{"ntp_source": "bad_label.example"}', '{"ntp_source": 5}', "{}", "[]", "not json",
])
def test_malformed_arguments_are_refused(raw: str) -> None:
    with pytest.raises(InvalidStepArguments):
        NtpSynchronizerStep().parse_args([raw])


def test_valid_arguments() -> None:
    step = NtpSynchronizerStep()
    assert step.parse_args(['{"ntp_source": ""}']).sources == ()
    parsed = step.parse_args(['{"ntp_source": "ntp.example.com, 10.1.2.3,fd00::1,ntp.example.com,clock."}'])
    assert parsed.sources == ("ntp.example.com", "10.1.2.3", "fd00::1", "clock.")
    with pytest.raises(InvalidStepArguments):
        step.parse_args([])


# -- reference service side -----------------------------------------------------------------------------------
def _view(host: dict[str, Any], cluster: dict[str, Any] | None = None, infra_env: dict[str, Any] | None = None) \
        -> HostView:
    return HostView(host=host, infra_env=infra_env or {}, cluster=cluster)


def test_service_sends_the_clusters_sources_or_the_infra_envs() -> None:
    assert preinstall.ntp_args(_view({"id": "h"}, cluster={"additional_ntp_source": "a.example,10.0.0.1"})) == [
        '{"ntp_source": "a.example,10.0.0.1"}']
    assert preinstall.ntp_args(_view({"id": "h"}, cluster={"additional_ntp_source": None})) == ['{"ntp_source": ""}']
    assert preinstall.ntp_args(_view({"id": "h"}, infra_env={"additional_ntp_sources": "b.example"})) == [
        '{"ntp_source": "b.example"}']
    args = preinstall.ntp_args(_view({"id": "h"}, cluster={"additional_ntp_source": "10.0.0.1"}))
    assert args is not None
    assert spec.errors(spec.STEP_REQUEST_MODELS["ntp-synchronizer"], json.loads(args[0])) == []


def test_ntp_synced_validation_follows_stored_sources() -> None:
    host: dict[str, Any] = {"id": "h"}
    assert preinstall.ntp_synced(_view(host)) == ("failure", "Host couldn't synchronize with any NTP server")
    out = {"ntp_sources": [{"source_name": "a", "source_state": "unreachable"}]}
    preinstall.ntp_reply(_view(host), out, {"exit_code": 0})
    assert json.loads(host["ntp_sources"]) == out["ntp_sources"]
    assert preinstall.ntp_synced(_view(host)) == ("failure", "Host couldn't synchronize with any NTP server")
    out["ntp_sources"].append({"source_name": "b", "source_state": "synced"})
    preinstall.ntp_reply(_view(host), out, {"exit_code": 0})
    assert preinstall.ntp_synced(_view(host)) == ("success", "Host NTP is synced")
    preinstall.ntp_reply(_view(host), None, {"exit_code": -1, "error": "chronyc was timed out after 30 seconds"})
    assert preinstall.ntp_synced(_view(host)) == ("success", "Host NTP is synced")  # last good report kept
    host["ntp_sources"] = "{not json"
    assert preinstall.ntp_synced(_view(host)) == ("error", "Parse error for NTP sources")
