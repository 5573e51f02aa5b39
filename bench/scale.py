"""The reference service under swarms of simulated hosts: latency per endpoint, errors, RSS and CPU.

    .venv/bin/python bench/scale.py [--hosts 10,100,300,1000,3000] [--interval 10] [--duration 40]
                                    [--saturate-hosts 1000] [--saturate-seconds 30]

For each swarm size a fresh service (its own database, every step issued) runs on 127.0.0.1 and a swarm
(``assisted-reference-service swarm``, another process) registers the hosts over the first interval, then
each polls every ``--interval`` seconds and answers every instruction. Then a saturation run: hosts that
poll back to back (answering at their normal pace). The table gives polls/s offered and served (served:
after the ramp), p50/p99 of polls, replies and registrations, errors, the service's RSS and CPU (its reply worker
process included), how late the swarm's own loop woke and its CPU, and the
ratio of the poll p99 at N hosts to the poll p99 at the smallest swarm. Targets (issue 12): 1,000 hosts at
10 s: poll and reply p99 <= 100 ms, 0 errors, RSS <= 200 MiB; 3,000 hosts: 0 errors, poll p99 <= 1 s;
saturation with 1,000 hosts >= 500 polls/s; poll p99 at 1,000 <= 2x p99 at 10. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
SERVICE = str(BIN / "assisted-reference-service")


def start_service(work: Path, interval: float) -> tuple[subprocess.Popen[bytes], str]:
    ready = work / "url"
    env = {**os.environ, "DISABLED_STEPS": ""}
    with open(work / "service.log", "wb") as log:
        proc = subprocess.Popen([SERVICE, "--port", "0", "--db", str(work / "db"), "--next-step-seconds",
                                 str(int(interval)), "--ready-file", str(ready), "--log-level", "warning"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the service did not start:\n" + (work / "service.log").read_text())
        time.sleep(0.05)
    return proc, ready.read_text().strip()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_run(hosts: int, interval: float, duration: float, saturate: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        proc, url = start_service(work, interval)
        try:
            out = work / "swarm.json"
            cmd = [SERVICE, "swarm", "--url", url, "--hosts", str(hosts), "--interval", str(interval),
                   "--duration", str(duration + interval), "--service-pid", str(proc.pid), "--json", str(out)]
            if saturate:
                cmd.append("--saturate")
            subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=duration + interval + 300, check=False)
            result: dict[str, Any] = json.loads(out.read_text())
        finally:
            stop(proc)
    result["offered"] = float("inf") if saturate else hosts / interval
    result["saturate"] = saturate
    return result


def ms(endpoint: dict[str, Any] | None, key: str) -> str:
    return f"{endpoint[key] * 1e3:.0f}" if endpoint else "-"


def table(results: list[dict[str, Any]]) -> str:
    base = next((r for r in results if not r["saturate"]), None)
    base_p99 = base["endpoints"]["poll"]["p99"] if base else 0.0
    rows = ["| hosts | polls/s offered | polls/s served | poll p50 / p99 ms | reply p50 / p99 ms | register p99 ms "
            "| errors | service RSS MiB | service CPU % | CPU ms per poll | poll p99 / p99 at "
            f"{base['hosts'] if base else '-'} | swarm: loop late p99 ms, CPU % |", "|" + "---|" * 12]
    for r in results:
        e = r["endpoints"]
        poll, reply, reg = e.get("poll"), e.get("reply"), e.get("register")
        errors = sum(x["errors"] for x in e.values())
        svc = r.get("service") or {}
        own = r.get("swarm") or {}
        ratio = f"{poll['p99'] / base_p99:.2f}" if poll and base_p99 and not r["saturate"] else "-"
        offered = "back to back" if r["saturate"] else f"{r['offered']:.0f}"
        rows.append(f"| {r['hosts']}{' (saturation)' if r['saturate'] else ''} | {offered} | "
                    f"{poll['per_second'] if poll else 0:.1f} | {ms(poll, 'p50')} / {ms(poll, 'p99')} | "
                    f"{ms(reply, 'p50')} / {ms(reply, 'p99')} | {ms(reg, 'p99')} | {errors} | "
                    f"{svc.get('rss_max_mib', 0):.0f} | {svc.get('cpu_percent', 0):.0f} | "
                    f"{svc.get('cpu_ms_per_poll', 0):.1f} | {ratio} | "
                    f"{own.get('lag_p99_ms', 0):.0f}, {own.get('cpu_percent', 0):.0f} |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", default="10,100,300,1000,3000", help="swarm sizes, comma-separated")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between a host's polls (default 10)")
    p.add_argument("--duration", type=float, default=40.0, help="seconds measured after the ramp (default 40)")
    p.add_argument("--saturate-hosts", type=int, default=1000, help="hosts of the saturation run (0: none)")
    p.add_argument("--saturate-seconds", type=float, default=30.0)
    ns = p.parse_args()
    results = []
    for n in [int(x) for x in ns.hosts.split(",") if x]:
        results.append(one_run(n, ns.interval, ns.duration, False))
        poll = results[-1]["endpoints"].get("poll") or {}
        windows = " ".join(f"{w['p99'] * 1e3:.0f}" for w in poll.get("windows", []))
        print(f"{n} hosts done: poll p99 {poll.get('p99', 0) * 1e3:.0f} ms; per 10 s (ramp first): {windows}",
              file=sys.stderr)
        for err in results[-1].get("errors_sample") or []:
            print(f"  error: {err}", file=sys.stderr)
    if ns.saturate_hosts:
        results.append(one_run(ns.saturate_hosts, ns.interval, ns.saturate_seconds, True))
        for err in results[-1].get("errors_sample") or []:
            print(f"  saturation error: {err}", file=sys.stderr)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(table(results))
    for r in results:  # the polls whose answer lists every other host (counted in the table's polls too)
        cc = r["endpoints"].get("poll-cc")
        if cc and not r["saturate"]:
            print(f"{r['hosts']} hosts: {cc['count']} polls carried connectivity-check, p50 / p99 "
                  f"{ms(cc, 'p50')} / {ms(cc, 'p99')} ms")
        if r.get("statuses") and not r["saturate"]:  # a run long enough lets every host reach known
            print(f"{r['hosts']} hosts at the end: " + ", ".join(f"{n} {s}" for s, n in sorted(r["statuses"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
