"""Fault suite (issue 11): real agents against a real reference service while faults are injected; one table.

    .venv/bin/python bench/faults.py [--agents 3] [--restarts 3] [--only-install]  (root: namespaces, loop devices)

Each scenario is bounded in time and uses only 127.0.0.1 and network namespaces it makes. Every instruction is a
step of the sample plugin (tests/plugins) that sleeps, so each fault lands while steps are running:

- service killed (-9) and restarted N times while every agent has a step in flight (discovery);
- a service that accepts TCP and never answers, then answers again;
- 5xx storms on polls and on step replies;
- malformed, huge (over the agent's cap) and truncated poll answers;
- a link cut in a namespace while a step runs;
- the agent killed with SIGKILL mid-step (a step with a grandchild in its own session), then restarted.
- the service killed (-9) and restarted N times mid-install (a dry-run installation onto a loop device), and a
  write-image whose disk fills up (bench/faults_install.py);
- hostile networks and neighbours (bench/faults_hostile.py): a redirect to another origin, polls answered 404,
  two agents on one state directory, slowloris, header flood, trickled bodies, a forged cross-site POST,
  10,000 hosts on one token;
- the database's filesystem frozen, and a power cut (bench/faults_storage.py).

Counted: faults injected; agent crashes (an agent process that ended on its own); replies lost (an instruction a
live agent started whose reply never reached the service); duplicate hosts; orphan processes (anything a step
started still alive after its agent died or stopped); DB integrity (``PRAGMA integrity_check``); leaks (a token
sent to another origin, a forged request answered, the service grown past its bound); storms (an agent's requests
a second past the bound, a limit not enforced); health wrong (``/healthz`` silent about stuck storage); the worst
wait of other clients while the service was attacked. Targets: 0, 0, 0, 0, ok, 0, 0, 0, under the bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.runner import MARK_ENV
from tests.support.hostile import Answer, HostileService
from tests.support.service import AgentProcess, RefService, start_agent, start_service

PLUGINS = Path(__file__).resolve().parents[1] / "tests" / "plugins"
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)}


@dataclass
class Tally:
    faults: int = 0
    crashes: int = 0
    lost: int = 0
    duplicates: int = 0
    orphans: int = 0
    integrity: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leaks: int = 0  # a token sent to another origin, a forged request answered, the service grown past its bound
    storms: int = 0  # an agent polling faster than faults_hostile.POLLS_PER_SECOND_BOUND, a limit not enforced
    latency: float = 0.0  # the worst wait of another client while the service was attacked (seconds)
    health_wrong: int = 0  # /healthz said nothing (or "ok") while the database's storage was stuck


def host_id(n: int) -> str:
    return f"fa017000-0000-4000-8000-{n:012d}"


def echo(message: str, sleep: float) -> str:
    return json.dumps({"message": message, "sleep": sleep})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def marked_alive(marks: set[str]) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK_ENV) in marks and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def setup(svc: RefService) -> str:
    cluster = svc.create_cluster(control_plane_count=1)
    return str(svc.create_infra_env(cluster_id=cluster["id"])["id"])


def queue(svc: RefService, ie: str, host: str, args: list[str], step_type: str = "sample-echo") -> str:
    step = svc.call("POST", f"/api/reference/infra-envs/{ie}/hosts/{host}/instructions", expected=201,
                    json={"step_type": step_type, "args": args})
    return str(step["step_id"])


def answered(svc: RefService, host: str, step_id: str) -> bool:
    try:
        return any(r["step_id"] == step_id for r in svc.replies(host))
    except Exception:
        return False


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def check_crashes(t: Tally, agents: list[AgentProcess], what: str) -> None:
    for a in agents:
        if not a.alive():
            t.crashes += 1
            t.notes.append(f"{what}: agent exited {a.proc.returncode}: {a.log[-300:]}")


# -- scenarios ---------------------------------------------------------------------------------------------
def service_restarts(t: Tally, work: Path, agents_n: int, restarts: int) -> None:
    port, db = free_port(), work / "restarts.db"
    url = f"http://127.0.0.1:{port}"
    with start_service(work, port=port, db=db) as svc:
        ie = setup(svc)
    agents = [start_agent(url, ie, args=["--host-id", host_id(i)], env=ENV, log=work / f"restart-agent{i}.log")
              for i in range(agents_n)]
    procs = [a.__enter__() for a in agents]
    try:
        pending: list[tuple[str, str]] = []
        for round_ in range(restarts):
            with start_service(work, port=port, db=db) as svc:
                wait(lambda: len(svc.hosts(ie)) >= agents_n, 30)
                for i in range(agents_n):
                    step = queue(svc, ie, host_id(i), [echo(f"r{round_}-{i}", 2)])
                    pending.append((host_id(i), step))
                for (_, step), proc in zip(pending[-agents_n:], procs, strict=True):
                    wait(lambda s=step, p=proc: f"({s})" in p.log, 20)  # type: ignore[misc]
                os.kill(svc.proc.pid, signal.SIGKILL)  # mid-step: every agent has one running
                t.faults += 1
                svc.proc.wait(10)
            time.sleep(1.0)
        with start_service(work, port=port, db=db) as svc:
            for host, step in pending:
                if not wait(lambda h=host, s=step: answered(svc, h, s), 60):  # type: ignore[misc]
                    t.lost += 1
                    t.notes.append(f"restarts: no reply for {step}")
            t.duplicates += len(svc.hosts(ie)) - agents_n
        check_crashes(t, procs, "restarts")
    finally:
        for a in agents:
            a.__exit__(None, None, None)
    t.integrity.append(integrity(db))


def silent_and_malformed(t: Tally, work: Path) -> None:
    hostile = HostileService()
    try:
        huge = Answer(b"[" + b"0," * (40 << 20) + b"0]")  # 80 MiB, over the agent's cap
        hostile.answer(Answer(b"", fault="silent"), Answer(b"<html>502</html>", content_type="text/html"),
                       Answer(b"[]"), Answer(b'{"instructions": 5}'), huge,
                       Answer(b'{"instructions": [{"step_id": "t", "step_type": "sample-echo"}]}', fault="truncated"),
                       Answer.steps([{"step_id": "after", "step_type": "sample-echo", "args": [echo("ok", 0)]}]))
        t.faults += 6
        with start_agent(hostile.url, host_id(90), args=["--host-id", host_id(90)], env=ENV,
                         log=work / "hostile.log") as agent:
            try:
                hostile.wait_reply("after", timeout=120)
            except AssertionError:
                t.lost += 1
                t.notes.append("hostile: no reply after the bad answers")
            check_crashes(t, [agent], "hostile")
    finally:
        hostile.close()


def storms(t: Tally, work: Path) -> None:
    with start_service(work, db=work / "storm.db") as svc:
        ie = setup(svc)
        with start_agent(svc.url, ie, args=["--host-id", host_id(50)], env=ENV, log=work / "storm.log") as agent:
            wait(lambda: len(svc.hosts(ie)) == 1, 30)
            steps = [queue(svc, ie, host_id(50), [echo(f"s{i}", 1)]) for i in range(3)]
            wait(lambda: f"({steps[0]})" in agent.log, 20)
            # urllib3 retries each 503 three times (2, 4, 8 s) before the daemon backs off: 8 are a minute
            svc.inject_fault("GET", r"/instructions$", 503, count=8)
            svc.inject_fault("POST", r"/instructions$", 500, count=3)
            svc.inject_fault("GET", r"/instructions$", 502, count=6)
            t.faults += 3
            for step in steps:
                if not wait(lambda s=step: answered(svc, host_id(50), s), 240):  # type: ignore[misc]
                    t.lost += 1
                    t.notes.append(f"storm: no reply for {step}")
            check_crashes(t, [agent], "storm")
            t.duplicates += len(svc.hosts(ie)) - 1
        t.integrity.append(integrity(svc.db))


def link_cut(t: Tally, work: Path) -> None:
    if os.geteuid() != 0:
        t.notes.append("link cut: skipped, needs root")
        return
    from tests.support.netns import Network

    with Network(tag="f") as net:
        host = net.add_host()
        with net.start_service(work, db=work / "cut.db") as svc:
            ie = setup(svc)
            with host.start_agent(svc.agent_url, ie, args=["--host-id", host_id(60)], env=ENV,
                                  log=work / "cut.log") as agent:
                wait(lambda: len(svc.hosts(ie)) == 1, 30)
                step = queue(svc, ie, host_id(60), [echo("across a cut", 3)])
                wait(lambda: f"({step})" in agent.log, 20)
                host.cut()
                t.faults += 1
                time.sleep(6)
                host.restore()
                if not wait(lambda: answered(svc, host_id(60), step), 90):
                    t.lost += 1
                    t.notes.append("link cut: no reply")
                check_crashes(t, [agent], "link cut")
                t.duplicates += len(svc.hosts(ie)) - 1
        t.integrity.append(integrity(svc.db))


def agent_killed(t: Tally, work: Path, marks: set[str]) -> None:
    state = work / "killed-state"
    marks.add(str(state.absolute()))
    with start_service(work, db=work / "killed.db") as svc:
        ie = setup(svc)
        pid_file = work / "grandchild.pid"
        args = ["--host-id", host_id(70)]
        with start_agent(svc.url, ie, args=args, env=ENV, log=work / "killed1.log", state_dir=state) as agent:
            wait(lambda: len(svc.hosts(ie)) == 1, 30)
            queue(svc, ie, host_id(70), [str(pid_file), "300"], "sample-spawn-hang")
            wait(lambda: pid_file.exists() and bool(pid_file.read_text()), 30)
            os.kill(agent.proc.pid, signal.SIGKILL)
            t.faults += 1
            agent.proc.wait(10)
        time.sleep(3)
        left = marked_alive({str(state.absolute())})
        t.orphans += len(left)
        if left:
            t.notes.append(f"agent killed: {left} outlived it")
        with start_agent(svc.url, ie, args=args, env=ENV, log=work / "killed2.log", state_dir=state) as agent:
            step = queue(svc, ie, host_id(70), [echo("second life", 0)])
            if not wait(lambda: answered(svc, host_id(70), step), 60):
                t.lost += 1
                t.notes.append("agent killed: the restarted agent did not answer")
            check_crashes(t, [agent], "agent killed")
            t.duplicates += len(svc.hosts(ie)) - 1
        t.integrity.append(integrity(svc.db))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--only-install", dest="only", action="store_true", help="only the installation scenarios")
    p.add_argument("--only-hostile", action="store_true",
                   help="only the hostile and storage scenarios (faults_hostile, faults_storage)")
    p.add_argument("--scenario", action="append", default=[], metavar="WORDS",
                   help="only the scenarios whose name holds WORDS (repeatable), e.g. 'power cut'")
    ns = p.parse_args()
    # SIGTERM (timeout, Ctrl-C from a supervisor) unwinds like an exception: loop devices, the tmpfs, namespaces
    # and processes are released by their context managers instead of outliving the suite.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    t = Tally()
    marks: set[str] = set()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("AGENT_CONFIG", "/nonexistent")
        scenarios: list[tuple[str, Callable[[], None]]] = [
            ("service -9 and restart", lambda: service_restarts(t, work, ns.agents, ns.restarts)),
            ("silent, malformed, huge, truncated", lambda: silent_and_malformed(t, work)),
            ("5xx storms", lambda: storms(t, work)),
            ("link cut in a namespace", lambda: link_cut(t, work)),
            ("agent SIGKILL mid-step", lambda: agent_killed(t, work, marks)),
        ]
        if ns.only or ns.only_hostile:
            scenarios = []
        import faults_hostile
        import faults_install  # here: they import this module's helpers
        import faults_storage

        if not ns.only_hostile:
            scenarios += faults_install.scenarios(t, work, ns.restarts)
        if not ns.only:
            scenarios += faults_hostile.scenarios(t, work) + faults_storage.scenarios(t, work)
        if ns.scenario:
            scenarios = [(name, run) for name, run in scenarios if any(w in name for w in ns.scenario)]
        for name, run in scenarios:
            begin = time.monotonic()
            try:
                run()
            except Exception as exc:  # a broken scenario is reported, and counted against the agent
                t.crashes += 1
                t.notes.append(f"{name}: scenario failed: {type(exc).__name__}: {exc}")
            print(f"  {name}: {time.monotonic() - begin:.0f} s", flush=True)
        marks |= {str(d.absolute()) for d in work.glob("*-state")}
        t.orphans += len(marked_alive(marks))
    ok = all(r == "ok" for r in t.integrity) and bool(t.integrity)
    rows: list[tuple[str, Any, Any]] = [
        ("faults injected", t.faults, "-"), ("agent crashes", t.crashes, 0), ("replies lost", t.lost, 0),
        ("duplicate hosts", t.duplicates, 0), ("orphan processes", t.orphans, 0),
        ("DB integrity", "ok" if ok else ",".join(t.integrity) or "none checked", "ok"),
        ("leaks", t.leaks, 0), ("storms", t.storms, 0), ("health wrong", t.health_wrong, 0),
        ("others' worst wait", f"{t.latency:.2f} s", f"<{faults_hostile.LATENCY_BOUND:g} s"),
    ]
    print(f"\nfault suite: {time.monotonic() - started:.0f} s, {ns.agents} agents, {ns.restarts} service restarts")
    print(f"| {'figure':<18} | {'measured':>10} | {'target':>6} |")
    print(f"|{'-' * 20}|{'-' * 12}|{'-' * 8}|")
    for name, value, target in rows:
        print(f"| {name:<18} | {value!s:>10} | {target!s:>6} |")
    for note in t.notes:
        print(f"note: {note[:400]}")
    good = (t.crashes == t.lost == t.duplicates == t.orphans == t.leaks == t.storms == t.health_wrong == 0 and ok
            and t.latency < faults_hostile.LATENCY_BOUND)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
