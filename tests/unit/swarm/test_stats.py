"""swarm.stats: nearest-rank percentiles, per-endpoint figures with the ramp kept apart, and the figures of
processes measured for real (this one, and whoever listens on a loopback port)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import psutil
import pytest

from swarm.stats import LoopLag, ProcessSampler, Stats, format_result, listening_pid, percentile

RESULT = {
    "hosts": 3, "registered": 2, "seconds": 12.4,
    "endpoints": {"poll": {"count": 40, "per_second": 3.5, "p50": 0.002, "p90": 0.004, "p99": 0.009, "max": 0.02,
                           "errors": 1, "windows": [{"from": 0, "count": 10, "p99": 0.009},
                                                    {"from": 0, "count": 30, "p99": 0.005}]}},
    "statuses": {"known": 2, "discovering": 1},
    "service": {"rss_max_mib": 120.4, "cpu_percent": 12.0, "cpu_ms_per_poll": 1.25},
    "swarm": {"lag_p99_ms": 3.0, "lag_max_ms": 8.0, "cpu_percent": 20.0},
    "errors_sample": ["poll: HTTP 503"],
}


def test_the_report_has_every_figure() -> None:
    lines = format_result(RESULT).splitlines()
    assert lines[0] == "3 hosts (2 registered) for 12 s"
    assert lines[2].split() == ["poll", "40", "3.5", "2.0", "4.0", "9.0", "20.0", "1"]
    assert "poll p99 ms per 10 s (ramp first): 9 5" in lines
    assert "host statuses: discovering 1, known 2" in lines
    assert "service: RSS max 120 MiB, CPU 12 % of a core, 1.2 ms CPU per poll" in lines
    assert lines[-1] == "error: poll: HTTP 503"


def test_percentile_is_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert [percentile(ordered, q) for q in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


def test_summary_counts_errors_and_the_steady_rate_apart_from_the_ramp() -> None:
    stats = Stats()
    for i in range(10):
        stats.record("poll", 0.001 * (i + 1), None if i % 5 else "HTTP 503")
    stats.record("register", 0.2, None)
    stats.ends["poll"] = [100.0 + i for i in range(10)]  # one a second; the ramp ends at 104
    summary = stats.summary(104.0)
    poll = summary["poll"]
    assert (poll["count"], poll["errors"], poll["p50"], poll["max"]) == (10, 2, 0.005, 0.010)
    assert poll["per_second"] == 6 / 5  # the six polls that ended from 104 to 109
    assert stats.error_sample == ["poll: HTTP 503", "poll: HTTP 503"]
    assert [(w["from"], w["count"]) for w in poll["windows"]] == [(0.0, 4), (0.0, 6)]  # the ramp, then 104-114
    assert poll["windows"][0]["p99"] == 0.004
    assert summary["register"]["count"] == 1


def test_the_error_sample_keeps_only_the_first_ones() -> None:
    stats = Stats()
    for i in range(20):
        stats.record("reply", 0.0, f"e{i}")
    assert stats.error_sample == [f"reply: e{i}" for i in range(5)] and stats.errors == {"reply": 20}


def test_the_process_sampler_measures_a_real_process() -> None:
    sampler = ProcessSampler.for_service("http://127.0.0.1:9", os.getpid())
    assert sampler is not None
    sum(i * i for i in range(300_000))  # some CPU
    figures = sampler.summary(polls=10)
    assert figures["rss_max_mib"] > 1 and figures["cpu_seconds"] > 0 and figures["cpu_ms_per_poll"] > 0
    assert ProcessSampler.for_service("http://192.0.2.1:80", None) is None  # not on this machine


def test_listening_pid_finds_the_process_on_a_loopback_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        try:
            psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            pytest.skip("this system hides sockets' owners from unprivileged users")
        assert listening_pid(f"http://127.0.0.1:{port}") == os.getpid()
        assert listening_pid(f"http://example.com:{port}") is None


def test_loop_lag_sees_a_blocked_loop() -> None:
    lag = LoopLag(period=0.01)

    async def blocked() -> None:
        task = asyncio.create_task(lag.run())
        await asyncio.sleep(0.03)
        time.sleep(0.2)  # the loop cannot wake the timer meanwhile
        await asyncio.sleep(0.03)
        task.cancel()

    asyncio.run(blocked())
    assert lag.summary()["lag_max_ms"] >= 150
