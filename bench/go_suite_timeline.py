"""Where the Go suite's first second goes: the timeline of an agent container's start, ours beside the Go agent.

    MYDIR=... ip netns exec hs-wm .venv/bin/python bench/go_suite_timeline.py [--rounds 5] [--step]
        [--agent ours=/path/to/project] [--agent before=/path/to/other/clone] [--go]

Run inside the harness of ``../shared/peer-suites/go-subsystem`` (after its up.sh; MYDIR as for it). The specs
``Happy flow``, ``Register recovery`` and ``Step not exists`` look for the register, the first poll (and the
step's reply) one second after ``docker compose up -d agent`` returns; ``Verify nextInstructionSeconds`` for
four polls within five. For each start (the agents alternating) this prints, in seconds after ``up`` returned:
the ``exec`` of the agent (the harness's share before it: the stand-in container's mounts), the register, the
first poll, the second poll and, with ``--step``, the reply to an unknown step type in every poll answer (as in
``Step not exists``). The requests are WireMock's journal; the ``exec`` is the kernel's ``sched_process_exec``
event, recorded by ``perf`` (``linux-perf``) when it is installed. Needs root. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "peer-suites" / "go-subsystem"
PORT = 18300
ADMIN = f"http://localhost:{PORT}/__admin"
INFRA = "11111111-1111-1111-1111-111111111111"
HOST = "00000000-0000-0000-0000-0000000000fe"
HOSTS = f"/api/assisted-install/v2/infra-envs/{INFRA}/hosts"
_PERF_LINE = re.compile(r"^\s*\S.*?\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+sched:sched_process_exec:\s+filename=(\S+)")


def call(method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ADMIN + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def stub(request: dict[str, Any], status: int, body: Any = None) -> None:
    response: dict[str, Any] = {"status": status}
    if body is not None:
        response.update(headers={"Content-Type": "application/json"}, body=json.dumps(body))
    call("POST", "/mappings", {"request": request, "response": response})


def stubs(step: bool) -> None:
    runner = json.dumps({"agent_version": "subsystem_agent:latest", "host_id": HOST, "infra_env_id": INFRA})
    stub({"url": HOSTS, "method": "POST"}, 201, {"id": HOST, "kind": "host",
                                                "next_step_runner_command": {"args": [runner]}})
    steps = [{"step_type": "Step-not-exists", "step_id": "wrong-step", "args": []}] if step else []
    stub({"urlPattern": f"{HOSTS}/{HOST}/instructions[?]timestamp=[0-9]*", "method": "GET"}, 200,
         {"next_instruction_seconds": 1, "instructions": steps})
    stub({"url": f"{HOSTS}/{HOST}/instructions", "method": "POST"}, 204)


def docker(args: list[str], project: str) -> None:
    env = {**os.environ, "AGENT_IMPL": "go" if project == "go" else "py"}
    if project != "go":
        env["PROJ"] = project
    subprocess.run([str(HARNESS / "bin" / "docker"), "compose", "-f", "docker-compose.yml", *args], check=True,
                   env=env)


def monotonic_of(wall: float) -> float:
    return wall - (time.time() - time.clock_gettime(time.CLOCK_MONOTONIC))


def one(project: str, step: bool, watch: float) -> dict[str, Any]:
    docker(["rm", "-s", "-f", "agent"], project)
    call("DELETE", "/requests")
    call("DELETE", "/mappings")
    stubs(step)
    load = os.getloadavg()[0]
    called = time.clock_gettime(time.CLOCK_MONOTONIC)
    docker(["up", "-d", "agent"], project)
    up = time.clock_gettime(time.CLOCK_MONOTONIC)
    time.sleep(watch)
    seen = [(monotonic_of(e["request"]["loggedDate"] / 1000.0), e["request"]["method"], e["request"]["url"])
            for e in call("GET", "/requests")["requests"]]
    docker(["rm", "-s", "-f", "agent"], project)
    seen.sort()
    return {"called": called, "up": up, "load": load,
            "register": [t - up for t, m, u in seen if m == "POST" and u == HOSTS],
            "polls": [t - up for t, m, _ in seen if m == "GET"],
            "replies": [t - up for t, m, u in seen if m == "POST" and u.endswith("/instructions")]}


def execs(data: Path) -> list[tuple[float, str]]:
    """(monotonic time, file) of every agent exec perf recorded."""
    out = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True, check=False).stdout
    found = []
    for line in out.splitlines():
        m = _PERF_LINE.match(line)
        if m and (m.group(3).endswith("/.venv/bin/agent") or m.group(3).endswith("goagent-bin/agent")):
            found.append((float(m.group(2)), m.group(3)))
    return found


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--step", action="store_true", help="every poll answers an unknown step type")
    parser.add_argument("--agent", action="append", default=[], metavar="NAME=PROJECT",
                        help="a project checkout with .venv (repeatable); default: this one")
    parser.add_argument("--go", action="store_true", help="the Go agent beside (AGENT_IMPL=go)")
    parser.add_argument("--watch", type=float, default=5.0)
    args = parser.parse_args()
    agents = dict(a.split("=", 1) for a in args.agent) or {"ours": str(Path(__file__).resolve().parents[1])}
    if args.go:
        agents["go"] = "go"
    perf = None
    data = Path(tempfile.mkdtemp()) / "perf.data"
    if shutil.which("perf"):
        perf = subprocess.Popen(["perf", "record", "-q", "-k", "mono", "-e", "sched:sched_process_exec", "-a",
                                 "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in agents}
    try:
        for i in range(args.rounds):
            names = list(agents) if i % 2 == 0 else list(agents)[::-1]
            for name in names:
                results[name].append(one(agents[name], args.step, args.watch))
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        call("DELETE", "/requests")
        call("DELETE", "/mappings")
    seen = execs(data) if perf is not None else []
    print("agent  load   exec   register poll   2nd-poll reply   (seconds after `up` returned)")
    for name, runs in results.items():
        rows = [derived(r, seen, args.watch) for r in runs]
        for row in rows:
            print(f"{name:6} {row['load']:5.1f} " + " ".join(f"{fmt(row[k]):6}" for k in COLUMNS))
        summary = ", ".join(f"{k} {median(rows, k)}" for k in SPANS)
        within = sum(1 for row in rows if row["poll"] is not None and row["poll"] < 1)
        print(f"  {name} medians: {summary}; first poll within 1 s of `up` in {within} of {len(rows)}")


COLUMNS = ("exec", "register", "poll", "poll2", "reply")
SPANS = ("exec", "exec to register", "register to poll", "poll to poll2", "poll to reply")


def derived(run: dict[str, Any], seen: list[tuple[float, str]], watch: float) -> dict[str, Any]:
    """One start's times after `up` returned, and the spans between them (None where not seen)."""
    row: dict[str, Any] = {"load": run["load"]}
    row["exec"] = next((t - run["up"] for t, _ in seen if run["called"] <= t <= run["up"] + watch), None)
    row["register"] = run["register"][0] if run["register"] else None
    row["poll"] = run["polls"][0] if run["polls"] else None
    row["poll2"] = run["polls"][1] if len(run["polls"]) > 1 else None
    row["reply"] = run["replies"][0] if run["replies"] else None
    for span in SPANS[1:]:
        start, end = span.split(" to ")
        row[span] = row[end] - row[start] if row[start] is not None and row[end] is not None else None
    return row


def median(rows: list[dict[str, Any]], key: str) -> str:
    values = [row[key] for row in rows if row[key] is not None]
    return fmt(statistics.median(values)) if values else "-"

if __name__ == "__main__":
    main()
