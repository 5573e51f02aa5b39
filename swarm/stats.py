"""Figures of a swarm run: request latencies per endpoint, the service process's RSS and CPU, and their report."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

#: Error messages kept for the report (the first ones: later ones usually repeat them).
ERROR_SAMPLE = 5
#: The span of the per-window figures.
WINDOW_SECONDS = 10.0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    #: When each request ended (monotonic), for the rate served once every host has started.
    ends: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_sample: list[str] = field(default_factory=list)

    def record(self, endpoint: str, seconds: float, error: str | None) -> None:
        self.latencies.setdefault(endpoint, []).append(seconds)
        self.ends.setdefault(endpoint, []).append(time.monotonic())
        if error is not None:
            self.errors[endpoint] = self.errors.get(endpoint, 0) + 1
            if len(self.error_sample) < ERROR_SAMPLE:
                self.error_sample.append(f"{endpoint}: {error}")

    def summary(self, steady_from: float) -> dict[str, dict[str, Any]]:
        """Figures per endpoint; ``per_second`` counts only requests ended after ``steady_from`` (the ramp)."""
        out = {}
        for name, values in self.latencies.items():
            ordered = sorted(values)
            ends = self.ends[name]
            steady = [t for t in ends if t >= steady_from]
            span = max(ends) - steady_from if steady else 0.0
            out[name] = {"count": len(ordered), "p50": percentile(ordered, 50), "p90": percentile(ordered, 90),
                         "p99": percentile(ordered, 99), "max": ordered[-1], "errors": self.errors.get(name, 0),
                         "per_second": len(steady) / span if span > 0 else 0.0,
                         "windows": self._windows(name, steady_from)}
        return out

    def _windows(self, endpoint: str, start: float, width: float = WINDOW_SECONDS) -> list[dict[str, float]]:
        """Count and p99 per ``width`` seconds of request end times from ``start`` on (the ramp before it is
        one window of its own): tells a burst (the discovery wave, a monitor tick) from a steady cost."""
        buckets: dict[int, list[float]] = {}
        for seconds, end in zip(self.latencies[endpoint], self.ends[endpoint], strict=True):
            buckets.setdefault(-1 if end < start else int((end - start) // width), []).append(seconds)
        return [{"from": max(0.0, k * width), "count": len(v), "p99": percentile(sorted(v), 99)}
                for k, v in sorted(buckets.items())]


@dataclass
class ProcessSampler:
    """RSS (sampled each second) and CPU time of the service over the run, its child processes included (the
    worker that checks big step replies): a figure that left them out would flatter the service."""

    process: psutil.Process
    rss_max: int = 0
    started: float = field(default_factory=time.monotonic)
    cpu_start: float = 0.0
    #: CPU seconds of each child process seen (a child that ended keeps its last figure).
    children_cpu: dict[int, float] = field(default_factory=dict)

    @classmethod
    def for_service(cls, url: str, pid: int | None) -> ProcessSampler | None:
        if pid is None:
            pid = listening_pid(url)
        if pid is None:
            return None
        try:
            process = psutil.Process(pid)
            times = process.cpu_times()
        except psutil.Error:
            return None
        return cls(process=process, cpu_start=times.user + times.system)

    async def run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(1.0)

    def _sample(self) -> None:
        try:
            rss = self.process.memory_info().rss
            children = self.process.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                rss += child.memory_info().rss
                times = child.cpu_times()
                self.children_cpu[child.pid] = times.user + times.system
            except psutil.Error:
                pass
        self.rss_max = max(self.rss_max, rss)

    def summary(self, polls: int) -> dict[str, float]:
        self._sample()
        try:
            times = self.process.cpu_times()
            cpu = times.user + times.system - self.cpu_start + sum(self.children_cpu.values())
        except psutil.Error:
            cpu = 0.0
        wall = max(time.monotonic() - self.started, 1e-9)
        return {"rss_max_mib": self.rss_max / (1 << 20), "cpu_seconds": cpu, "cpu_percent": 100 * cpu / wall,
                "cpu_ms_per_poll": 1000 * cpu / polls if polls else 0.0}


@dataclass
class LoopLag:
    """How late the swarm's own event loop wakes (a timer every ``period`` seconds), and the swarm's CPU: a
    latency measured while the load generator's loop was late is the generator's, not the service's."""

    period: float = 0.05
    lags: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    cpu_start: float = field(default_factory=time.process_time)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - before - self.period))

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.lags)
        wall = max(time.monotonic() - self.started, 1e-9)
        return {"lag_p99_ms": 1e3 * percentile(ordered, 99), "lag_max_ms": 1e3 * (ordered[-1] if ordered else 0.0),
                "cpu_percent": 100 * (time.process_time() - self.cpu_start) / wall}


def listening_pid(url: str) -> int | None:
    """The process listening on the URL's port, if the URL is on this machine's loopback."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def format_result(result: dict[str, Any]) -> str:
    lines = [f"{result['hosts']} hosts ({result['registered']} registered) for {result['seconds']:.0f} s",
             f"{'endpoint':10} {'count':>7} {'per s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
             f"{'errors':>6}"]
    for name, s in result["endpoints"].items():
        lines.append(f"{name:10} {s['count']:7d} {s['per_second']:7.1f} {s['p50'] * 1e3:8.1f} {s['p90'] * 1e3:8.1f} "
                     f"{s['p99'] * 1e3:8.1f} {s['max'] * 1e3:8.1f} {s['errors']:6d}")
    for name, s in result["endpoints"].items():
        windows = s.get("windows") or []
        if len(windows) > 1:
            lines.append(f"{name} p99 ms per {WINDOW_SECONDS:.0f} s (ramp first): "
                         + " ".join(f"{w['p99'] * 1e3:.0f}" for w in windows))
    if result.get("statuses"):
        lines.append("host statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(result["statuses"].items())))
    svc = result.get("service")
    if svc:
        lines.append(f"service: RSS max {svc['rss_max_mib']:.0f} MiB, CPU {svc['cpu_percent']:.0f} % of a core, "
                     f"{svc['cpu_ms_per_poll']:.1f} ms CPU per poll")
    own = result.get("swarm")
    if own:
        lines.append(f"swarm: its loop late by p99 {own['lag_p99_ms']:.0f} ms, max {own['lag_max_ms']:.0f} ms; "
                     f"CPU {own['cpu_percent']:.0f} % of a core")
    for err in result.get("errors_sample") or []:
        lines.append(f"error: {err}")
    return "\n".join(lines)
