"""The agent's cost, ours beside the Go agent's, in the same run: the first register, then polls with steps.

    sudo .venv/bin/python bench/daemon.py [--go-agent NAME=PATH ...] [--seconds 120] [--interval 10] [--runs 5]

The Go agent is built from its repository (openshift/assisted-installer-agent, ``go build ./src/agent/main``);
give the binary with ``--go-agent head=/path/to/agent`` (repeatable, e.g. a 2023 build beside HEAD) or
``GO_AGENT_BIN``. Without one its columns say "not available". It runs as in the discovery image, with the
upstream test image's shims: ``podman run ... IMAGE CMD`` runs CMD in place, ``nsenter ... -- CMD`` runs CMD.

1. First register and poll: each agent is started against a small stub service on loopback (alternating,
   ``--runs`` times each); the stub reads the agent's CPU time (its threads' ``schedstat``, to the
   nanosecond, and its reaped children's) when the register request arrives, and the time since start when
   the register and the first poll arrive (issue 27: both within 0.25 s of start). The load average is printed
   beside them: on this shared machine the wall times follow it.
2. Polls: each agent runs for ``--seconds`` against the reference service (in test mode, the same steps every
   poll: inventory, ntp-synchronizer, domain-resolution; not free-network-addresses, which needs a physical NIC:
   the service drops the namespace's veth from the inventory as virtual, as the real one does), in a network
   namespace of its own (a veth to the service; DNS to an address nothing answers; nothing leaves the machine)
   and a pid namespace, whose ``ns_last_pid`` counts the tasks started (processes and threads alike: a thread takes a
   pid). CPU per poll cycle is the CPU of every process in the namespace over the window (reaped children
   included) over the polls the service saw; memory between polls is that of the agent's processes while no
   step runs (median of samples every 0.5 s), as distinct physical pages (each page any of them maps counted
   once: bench/footprint.py), with PSS and RSS summed beside it.

Needs root (namespaces). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from commands import compile_packages
from footprint import footprint

from rules.user_checks import SAMPLE_PULL_SECRET

BIN = Path(sys.executable).parent
BASE = "/api/assisted-install"
IMAGE = "bench-agent:latest"
IE = "11111111-1111-1111-1111-111111111111"
HOST = "00000000-0000-0000-0000-0000000000b1"
TICK = os.sysconf("SC_CLK_TCK")
PODMAN_SHIM = f"""#!/bin/sh
# podman run ... {IMAGE} CMD ARGS: run CMD in place (the agent image is this machine); anything else: nothing
if [ "$1" = run ]; then
  while [ $# -gt 0 ] && [ "$1" != "{IMAGE}" ]; do shift; done
  shift; exec "$@"
fi
exit 0
"""
NSENTER_SHIM = """#!/bin/sh
# nsenter --target 1 ... -- CMD ARGS: run CMD here
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift; exec "$@"
"""


@dataclass
class Agent:
    name: str
    argv0: str
    go: bool
    register: list[tuple[float, float]] = field(default_factory=list)
    first_poll: list[float] = field(default_factory=list)
    polls: dict[str, float] = field(default_factory=dict)

    def command(self, url: str, ie: str, interval: int) -> list[str]:
        return [self.argv0, "--url", url, "--infra-env-id", ie, "--agent-version", IMAGE, "--interval", str(interval),
                "--with-journal-logging=false", "--with-stdout-logging=true"]

    def env(self, work: Path, shims: Path) -> dict[str, str]:
        binaries = work / f"bin-{self.name}"  # the Go image's commands: links to one binary, chosen by argv[0]
        if self.go and not binaries.exists():
            binaries.mkdir()
            for name in ("next_step_runner", "inventory", "free_addresses", "disk_speed_check", "logs_sender"):
                (binaries / name).symlink_to(self.argv0)
        env = {"PATH": f"{shims}:{binaries}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        if not self.go:
            env.update(AGENT_STATE_DIR=str(work / f"state-{time.monotonic_ns()}"), AGENT_CONFIG="/nonexistent",
                       PATH=f"{BIN}:{env['PATH']}")
        return env


def cpu_of(pid: int) -> float:
    """CPU seconds of one process: its threads' run time to the nanosecond (schedstat; /proc/PID/stat counts
    whole 10 ms ticks, a sixth of the figure) plus its reaped children's (cutime + cstime, in ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    run = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            run += int((task / "schedstat").read_text().split()[0])
    return run / 1e9 + sum(int(x) for x in fields[13:15]) / TICK


# -- 1. first register ------------------------------------------------------------------------------------
class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # an agent stopped mid-request, as the bench stops them


class Stub(http.server.BaseHTTPRequestHandler):
    """Answers register and polls as the service would; notes the agent's CPU at its first register."""

    watch: dict[str, float] = {}

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        w = Stub.watch
        if "cpu" not in w and "pid" in w:
            w["cpu"], w["wall"] = cpu_of(int(w["pid"])), time.monotonic() - w["t0"]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        runner = {"host_id": HOST, "infra_env_id": IE, "agent_version": IMAGE}
        self._send(201, {"id": HOST, "kind": "Host", "href": "", "status": "discovering",
                         "next_step_runner_command": {"command": "", "args": [json.dumps(runner)]}})

    def do_GET(self) -> None:
        w = Stub.watch
        if "poll" not in w and "t0" in w:
            w["poll"] = time.monotonic() - w["t0"]
        self._send(200, {"next_instruction_seconds": 60, "instructions": []})


def first_registers(agents: list[Agent], runs: int, work: Path, shims: Path) -> None:
    srv = _QuietServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"
    try:
        for i in range(runs):
            for agent in agents if i % 2 == 0 else agents[::-1]:
                Stub.watch = {"t0": time.monotonic()}
                proc = subprocess.Popen(agent.command(url, IE, 60), env=agent.env(work, shims),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                Stub.watch["pid"] = proc.pid
                while "poll" not in Stub.watch and time.monotonic() - Stub.watch["t0"] < 30:
                    time.sleep(0.002)
                _stop(proc)
                agent.register.append((Stub.watch.get("cpu", float("nan")), Stub.watch.get("wall", float("nan"))))
                agent.first_poll.append(Stub.watch.get("poll", float("nan")))
    finally:
        srv.shutdown()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (15, 9):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            continue


# -- 2. polls ---------------------------------------------------------------------------------------------
def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


class Namespace:
    """A network namespace with a veth to this one (the service's side is .1, the agent's .2) and no DNS."""

    def __init__(self, index: int) -> None:
        self.name = f"agbench{os.getpid()}"
        net = f"10.{200 + index % 50}.{os.getpid() % 250}"
        self.near, self.far = f"{net}.1", f"{net}.2"
        self.veth = f"ab{os.getpid() % 100000}"
        sh("ip", "netns", "add", self.name)
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        sh("ip", "addr", "add", f"{self.near}/24", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        for cmd in (["addr", "add", f"{self.far}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                    ["link", "set", "lo", "up"], ["route", "add", "default", "via", self.near]):
            sh("ip", "-n", self.name, *cmd)
        self.etc = Path("/etc/netns") / self.name
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(f"nameserver {self.near}\n")  # nothing answers there: no DNS leaves

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=30)
        for f in self.etc.glob("*"):
            f.unlink()
        self.etc.rmdir()


def _pidns_members(inode: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/pid").st_ino == inode:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _last_pid(init: int) -> int:
    out = subprocess.run(["nsenter", "-t", str(init), "-p", "-m", "cat", "/proc/sys/kernel/ns_last_pid"],
                         capture_output=True, text=True, timeout=10, check=True)
    return int(out.stdout)


def polls(agent: Agent, svc_url: str, ns: Namespace, seconds: float, interval: int, work: Path,
          shims: Path) -> None:
    cluster = requests.post(svc_url + BASE + "/v2/clusters", json={
        "name": "bench", "openshift_version": "4.16", "pull_secret": SAMPLE_PULL_SECRET, "control_plane_count": 1,
        "base_dns_domain": "bench.test"}, timeout=10).json()
    ie = requests.post(svc_url + BASE + "/v2/infra-envs", json={
        "name": f"bench-{agent.name}", "pull_secret": SAMPLE_PULL_SECRET, "cluster_id": cluster["id"]},
        timeout=10).json()["id"]
    inner = " ".join(f"'{a}'" for a in agent.command(svc_url, ie, interval))
    t0 = time.time()
    with open(work / f"{agent.name}.log", "wb") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", ns.name, "unshare", "--pid", "--fork", "--mount-proc",
                                 "sh", "-c", f"mount --rbind / /host && {inner} & wait"], env=agent.env(work, shims),
                                stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        init = _wait_init(proc.pid)
        inode = os.stat(f"/proc/{init}/ns/pid").st_ino
        first_reply = _wait_first_reply(svc_url, ie, t0)
        time.sleep(2 * interval)  # past discovery: the host is insufficient and gets the same steps every poll
        start, cpu0, pid0 = time.time(), sum(_cpu_quiet(p) for p in _pidns_members(inode)), _last_pid(init)
        samples: list[tuple[int, tuple[float, float, float]]] = []
        while time.time() - start < seconds:
            members = [p for p in _pidns_members(inode) if p != init]
            f = footprint(members)
            if len(members) == len([p for p in _pidns_members(inode) if p != init]):  # no step came or went
                samples.append((len(members), (f.distinct_mib, f.pss_mib, f.rss_mib)))
            time.sleep(0.5)
        cpu1, pid1, end = sum(_cpu_quiet(p) for p in _pidns_members(inode)), _last_pid(init), time.time()
        seen = requests.get(svc_url + "/api/reference/requests", timeout=30).json()
        count = sum(1 for r in seen if r["method"] == "GET" and f"/infra-envs/{ie}/" in r["path"]
                    and r["path"].endswith("/instructions") and start <= r["received_at"] <= end)
        steady = min(n for n, _ in samples)
        replied = Counter(json.loads(r["body"] or "{}").get("step_type", "?") for r in seen
                          if r["method"] == "POST" and f"/infra-envs/{ie}/" in r["path"]
                          and r["path"].endswith("/instructions") and start <= r["received_at"] <= end)
        print(f"{agent.name}: replies posted in the window {dict(replied)}", file=sys.stderr)
        agent.polls = {"polls": count, "cpu_per_poll": (cpu1 - cpu0) / max(count, 1),
                       "processes_per_poll": (pid1 - pid0 - 1) / max(count, 1),
                       **{key: statistics.median(m[i] for n, m in samples if n == steady)
                          for i, key in enumerate(("memory_mib", "memory_pss_mib", "memory_rss_mib"))},
                       "processes_between_polls": steady, "first_reply_s": first_reply}
    finally:
        _stop(proc)


def _cpu_quiet(pid: int) -> float:
    try:
        return cpu_of(pid)
    except OSError:
        return 0.0


def _wait_init(unshare_pid: int) -> int:
    """The namespace's init: ``ip netns exec`` execs unshare, which forks it (``sh``, the agent's parent)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    raise RuntimeError("the agent's namespace did not start")


def _wait_first_reply(svc_url: str, ie: str, t0: float) -> float:
    deadline = time.time() + 120
    while time.time() < deadline:
        hosts = requests.get(f"{svc_url}{BASE}/v2/infra-envs/{ie}/hosts", timeout=10).json()
        for host in hosts:
            replies = requests.get(f"{svc_url}/api/reference/hosts/{host['id']}/replies", timeout=10).json()
            times = [r["received_at"] for r in replies if r["received_at"] >= t0]  # the host id is the machine's
            if times:
                return float(min(times) - t0)
        time.sleep(0.05)
    return float("nan")


# -- report -----------------------------------------------------------------------------------------------
def report(ours: Agent, others: list[Agent], go_missing: bool) -> None:
    rows: list[tuple[str, Callable[[Agent], float | None]]] = [
            ("first register: CPU s", lambda a: statistics.median(r[0] for r in a.register) if a.register else None),
            ("first register: wall s", lambda a: statistics.median(r[1] for r in a.register) if a.register else None),
            ("first poll: wall s", lambda a: statistics.median(a.first_poll) if a.first_poll else None),
            ("CPU s per poll cycle", lambda a: a.polls.get("cpu_per_poll")),
            ("tasks started per poll (proc+thr)", lambda a: a.polls.get("processes_per_poll")),
            ("memory between polls MiB (pages)", lambda a: a.polls.get("memory_mib")),
            ("  the same, PSS summed", lambda a: a.polls.get("memory_pss_mib")),
            ("  the same, RSS summed", lambda a: a.polls.get("memory_rss_mib")),
            ("processes between polls", lambda a: a.polls.get("processes_between_polls")),
            ("first reply after start s", lambda a: a.polls.get("first_reply_s")),
            ("polls in the window", lambda a: a.polls.get("polls"))]
    head = f"{'':34}{'ours':>10}" + "".join(f"{a.name:>12}{'ratio':>8}" for a in others)
    print(head + ("   Go agent: not available (--go-agent NAME=PATH or GO_AGENT_BIN)" if go_missing else ""))
    for label, get in rows:
        mine = get(ours)
        line = f"{label:34}{_fmt(mine):>10}"
        for other in others:
            theirs = get(other)
            ratio = f"{mine / theirs:.2f}" if mine is not None and theirs else "-"
            line += f"{_fmt(theirs):>12}{ratio:>8}"
        print(line)
    print(json.dumps({a.name: {"register": a.register, "first_poll": a.first_poll, **a.polls}
                      for a in [ours, *others]}))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--go-agent", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--skip-polls", action="store_true", help="only the first-register figures")
    ns = p.parse_args()
    specs = ns.go_agent or ([f"go={os.environ['GO_AGENT_BIN']}"] if os.environ.get("GO_AGENT_BIN") else [])
    others = [Agent(s.split("=", 1)[0], str(Path(s.split("=", 1)[1]).absolute()), True) for s in specs]
    others = [a for a in others if os.access(a.argv0, os.X_OK)]
    ours = Agent("ours", str(BIN / "agent"), False)
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    shims = work / "shims"
    shims.mkdir()
    for name, text in (("podman", PODMAN_SHIM), ("nsenter", NSENTER_SHIM)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    compile_packages()  # as installed: a start that compiles its modules measures the compiler
    load_before = os.getloadavg()
    first_registers([ours, *others], ns.runs, work, shims)
    load_after = os.getloadavg()
    print(f"first register and poll: load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if not ns.skip_polls:
        run_polls([ours, *others], ns.seconds, ns.interval, work, shims)
    report(ours, others, go_missing=not others)
    return 0


def run_polls(agents: list[Agent], seconds: float, interval: int, work: Path, shims: Path) -> None:
    steps_off = ("connectivity-check", "tang-connectivity-check", "verify-vips", "dhcp-lease-allocate",
                 "api-vip-connectivity-check")
    ready = work / "url"
    # The Go agent's inventory reads the host at /host (its container mounts it there): each agent's private
    # mount namespace binds / there; outside it is an empty directory, removed at the end if made here.
    made_host = not Path("/host").exists()
    Path("/host").mkdir(exist_ok=True)
    netns = Namespace(0)
    svc = subprocess.Popen([str(BIN / "assisted-reference-service"), "--host", netns.near, "--port", "0", "--db",
                            str(work / "db"), "--next-step-seconds", str(interval), "--test-mode", "--ready-file",
                            str(ready)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True, env={**os.environ, "DISABLED_STEPS": ",".join(steps_off)})
    try:
        while not ready.exists():
            time.sleep(0.05)
        url = ready.read_text().strip()
        for agent in agents:
            polls(agent, url, netns, seconds, interval, work, shims)
    finally:
        _stop(svc)
        netns.close()
        if made_host:
            Path("/host").rmdir()


if __name__ == "__main__":
    sys.exit(main())
