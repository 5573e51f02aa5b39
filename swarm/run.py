"""``assisted-reference-service swarm``: many simulated discovery hosts in one process, against any service.

    assisted-reference-service swarm --hosts N [--interval S] [--duration S] [--url URL] [--install]
                                     [--infra-env-id ID --token T] [--admin-token T] [--saturate] [--json FILE]

Each host (swarm_machine.py) registers, polls for instructions, answers every one of them as a dry-run agent
does (in the background, as the Go agent does), and sleeps ``--interval`` seconds (default: the service's
``next_instruction_seconds``) from each poll's answer; registrations are spread over the first interval. Without
``--infra-env-id`` the swarm creates its own cluster (VIPs in the hosts' first /22 of 10.64.0.0/14, the VIPs'
spelling and OpenShift version the service takes) and infra-env through the user API. With ``--install`` it starts the
installation once every host is ``known`` and lets the hosts go through it (a dry-run: the reference
service needs ``--dry-run-install``). ``--saturate`` polls back to back instead of sleeping (answering
instructions at most once an interval, so the polls are what is measured). At the end it prints, per
endpoint, the request count, p50, p90, p99 and max latency and the errors, and the service's RSS and CPU
when it runs on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import random
import resource
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from common import gc_policy, json_codec
from common.parent_watch import end_with_parent
from swarm import machine
from swarm.stats import LoopLag, ProcessSampler, Stats, format_result

BASE = "/api/assisted-install/v2"
AGENT_VERSION = "quay.io/edge-infrastructure/assisted-installer-agent:latest"
#: Progress a dry-run installer reports for each installation step (the Go agent's dry-run install).
_WRITTEN = ["Starting installation", "Installing", "Writing image to disk"]
INSTALL_STAGES = {"install": [*_WRITTEN, "Rebooting"], "write-image": _WRITTEN, "reboot": ["Rebooting"]}
TIMEOUT = aiohttp.ClientTimeout(total=60)
#: Replies made in a worker process: at 1,000 hosts a connectivity report takes the swarm about 10 ms to build
#: and encode, and the first 150 hosts get the step at once, which stopped the swarm's loop for a second (its
#: latencies then included that second).
OFFLOADED = {"connectivity-check"}
#: The polls (counted in "poll" too) whose answer carried connectivity-check: its arguments list every other
#: host's NICs (240 KB at 1,000 hosts, by the wire contract), so these are the polls whose cost grows with the
#: cluster. Shown apart so that the p99 of all polls can be read.
POLL_WITH_PEERS = "poll-cc"
#: How long a host keeps its idle connection: the Go agent's HTTP client (net/http's default transport) keeps
#: one for 90 s.
KEEP_ALIVE_SECONDS = 90.0
#: How long a host told to exit waits before it registers again (systemd's restart of the agent's unit).
RESTART_SECONDS = 1.0


@dataclass
class Options:
    url: str = "http://127.0.0.1:8090"
    hosts: int = 10
    interval: float | None = None
    duration: float = 60.0
    install: bool = False
    saturate: bool = False
    infra_env_id: str | None = None
    token: str = ""
    admin_token: str = ""
    seed: str = "swarm"
    service_pid: int | None = None


@dataclass
class Swarm:
    opts: Options
    session: aiohttp.ClientSession
    stats: Stats = field(default_factory=Stats)
    infra_env_id: str = ""
    cluster_id: str | None = None
    stop_at: float = 0.0
    registered: int = 0
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    #: Where the big replies are made (OFFLOADED), so that the swarm's loop keeps its pace.
    workers: concurrent.futures.Executor | None = None

    # -- setup through the user API ---------------------------------------------------------------------
    def _user_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.opts.admin_token}"} if self.opts.admin_token else {}

    async def _user(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.opts.url + path, json=body, headers=self._user_headers(),
                                        timeout=aiohttp.ClientTimeout(total=300)) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise SystemExit(f"swarm: {method} {path}: {resp.status} {text[:300]}")
            return json.loads(text) if text else None

    async def _get(self, path: str) -> Any:  # (None when the service has no such route)
        async with self.session.get(self.opts.url + BASE + path, headers=self._user_headers(),
                                    timeout=aiohttp.ClientTimeout(total=60)) as resp:
            return await resp.json(content_type=None) if resp.status == 200 else None

    async def _create_cluster(self, name: str) -> Any:
        """As the service's release takes it (``machine.cluster_params``); after a 400 about VIPs, the other way."""
        release = machine.service_release(await self._get("/component-versions"))
        version = machine.openshift_version(await self._get("/openshift-versions"))
        params = machine.cluster_params(name, release, version=version)
        async with self.session.post(self.opts.url + BASE + "/clusters", json=params, headers=self._user_headers(),
                                     timeout=aiohttp.ClientTimeout(total=300)) as resp:
            text = await resp.text()
            if resp.status == 201:
                return json.loads(text)
            if resp.status != 400 or "vip" not in text.lower():
                raise SystemExit(f"swarm: POST {BASE}/clusters: {resp.status} {text[:300]}")
        other = machine.cluster_params(name, release, "api_vips" not in params, version)
        return await self._user("POST", BASE + "/clusters", other)

    async def setup(self) -> None:
        if self.opts.infra_env_id:
            self.infra_env_id = self.opts.infra_env_id
            return
        cluster = await self._create_cluster(f"{self.opts.seed}-{self.opts.hosts}")
        self.cluster_id = cluster["id"]
        ie = await self._user("POST", BASE + "/infra-envs", {"name": f"{self.opts.seed}-{self.opts.hosts}",
                                                              "pull_secret": machine.SAMPLE_PULL_SECRET,
                                                              "cluster_id": cluster["id"]})
        self.infra_env_id = ie["id"]
        if self.opts.admin_token and not self.opts.token:
            found = await self._user("GET", f"/api/reference/infra-envs/{ie['id']}/token")
            self.opts.token = found["token"]

    # -- one host ---------------------------------------------------------------------------------------
    async def _agent(self, session: aiohttp.ClientSession, name: str, method: str, path: str,
                     body: Any = None) -> tuple[int, Any]:
        headers = {"discovery_agent_version": AGENT_VERSION}
        if self.opts.token:
            headers["X-Secret-Key"] = self.opts.token
        # orjson: a 330 KB report escaped by the json module cost the swarm's loop 2 ms a reply
        data = json_codec.dumps_bytes(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        try:
            async with session.request(method, self.opts.url + path, data=data, headers=headers,
                                       timeout=TIMEOUT) as resp:
                text = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.stats.record(name, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
            return 0, None
        elapsed = time.perf_counter() - start
        self.stats.record(name, elapsed, None if status < 300 else f"HTTP {status}")
        if name == "poll" and status == 200 and b'"connectivity-check"' in text:
            self.stats.record(POLL_WITH_PEERS, elapsed, None)
        try:
            return status, json_codec.loads(text) if text else None
        except ValueError:
            return status, None

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless the run ends first; False once it has."""
        remaining = self.stop_at - time.monotonic()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(self.stopped.wait(), min(seconds, remaining))
        except TimeoutError:
            return time.monotonic() < self.stop_at
        return False

    async def run_host(self, host: machine.SimHost, delay: float) -> None:
        """One host, with connections of its own as each real agent has (one HTTP client, kept alive; a
        second connection only while a poll overlaps the replies of the previous one): hosts sharing a pool
        would open connections in bursts whenever their cycles overlap."""
        if not await self._sleep(delay):
            return
        connector = aiohttp.TCPConnector(limit=2, keepalive_timeout=KEEP_ALIVE_SECONDS, ttl_dns_cache=None)
        async with aiohttp.ClientSession(connector=connector) as session:
            await self._host_loop(session, host)

    async def _host_loop(self, session: aiohttp.ClientSession, host: machine.SimHost) -> None:
        """Register, then poll; told to exit (bound, unbound), the host registers again after a moment, as
        the real agent does when systemd restarts it."""
        hosts_path = f"{BASE}/infra-envs/{self.infra_env_id}/hosts"
        first = True
        while True:
            status, _ = await self._agent(session, "register", "POST", hosts_path,
                                          {"host_id": host.host_id, "discovery_agent_version": AGENT_VERSION})
            if status != 201:
                if not await self._sleep(5 + random.random() * 5):
                    return
                continue
            self.registered += first
            first = False
            path = f"{hosts_path}/{host.host_id}/instructions"
            answering: set[asyncio.Task[None]] = set()
            try:
                exited = await self._poll_loop(session, host, path, answering)
            finally:  # the replies under way are sent before the host's connection closes
                await asyncio.gather(*answering)
            if not exited or not await self._sleep(RESTART_SECONDS):
                return

    async def _poll_loop(self, session: aiohttp.ClientSession, host: machine.SimHost, path: str,
                         answering: set[asyncio.Task[None]]) -> bool:
        """True when told to exit. As the Go agent's loop: the instructions are answered in the background and
        the host sleeps from the poll's answer, not from its last reply. Sleeping after the replies made hosts
        whose replies one group commit acknowledged poll together from then on; such cohorts grew with every
        stall, and in a few minutes a fifth of the polls arrived in a tenth of the time (docs/scale.md)."""
        answered = 0.0
        while True:
            status, steps = await self._agent(session, "poll", "GET", f"{path}?timestamp={int(time.time())}")
            wait = 5.0
            if status == 200 and isinstance(steps, dict):
                if steps.get("post_step_action") == "exit":
                    return True
                wait = float(steps.get("next_instruction_seconds") or 0)
                if self.opts.interval is not None:
                    wait = self.opts.interval
                # saturating, a host still answers at its normal pace: the polls are what is measured
                instructions = [s for s in steps.get("instructions") or [] if isinstance(s, dict)]
                if instructions and (not self.opts.saturate or time.monotonic() - answered >= wait):
                    answered = time.monotonic()
                    task = asyncio.create_task(self._answer_all(session, host, path, instructions))
                    answering.add(task)
                    task.add_done_callback(answering.discard)
            if self.opts.saturate:
                wait = 0.0
            if wait <= 0:
                if time.monotonic() >= self.stop_at:
                    return False
                await asyncio.sleep(0)
            elif not await self._sleep(wait):
                return False

    async def _answer_all(self, session: aiohttp.ClientSession, host: machine.SimHost, path: str,
                          instructions: list[dict[str, Any]]) -> None:
        for step in instructions:
            if time.monotonic() >= self.stop_at:  # the run is over: what is under way ends it
                return
            await self._answer(session, host, path, step)

    async def _answer(self, session: aiohttp.ClientSession, host: machine.SimHost, path: str,
                      step: dict[str, Any]) -> None:
        step_type, args = str(step.get("step_type", "")), [str(a) for a in step.get("args") or []]
        for stage in INSTALL_STAGES.get(step_type, []):
            await self._agent(session, "progress", "PUT", path.replace("/instructions", "/progress"),
                              {"current_stage": stage})
        if step_type in OFFLOADED and self.workers is not None:
            exit_code, output, error = await asyncio.get_running_loop().run_in_executor(
                self.workers, machine.reply_text, step_type, args, host, self.opts.hosts)
        else:
            exit_code, output, error = machine.reply_text(step_type, args, host, self.opts.hosts)
        reply = {"step_id": step.get("step_id", ""), "step_type": step_type, "exit_code": exit_code,
                 "output": output, "error": error}
        await self._agent(session, "reply", "POST", path, reply)

    # -- the run ----------------------------------------------------------------------------------------
    async def statuses(self) -> dict[str, int]:
        hosts = await self._user("GET", f"{BASE}/infra-envs/{self.infra_env_id}/hosts")
        counts: dict[str, int] = {}
        for h in hosts:
            counts[h.get("status", "?")] = counts.get(h.get("status", "?"), 0) + 1
        return counts

    async def run(self) -> dict[str, Any]:
        await self.setup()
        ramp = self.opts.interval if self.opts.interval is not None else 10.0
        self.stop_at = time.monotonic() + self.opts.duration
        started = time.monotonic()
        tasks = [asyncio.create_task(self.run_host(machine.sim_host(i, self.opts.seed), ramp * i / self.opts.hosts))
                 for i in range(self.opts.hosts)]
        installed_at = None
        if self.opts.install and self.cluster_id:
            installed_at = await self._install_when_known()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        result: dict[str, Any] = {"hosts": self.opts.hosts, "registered": self.registered, "seconds": elapsed,
                                  "ramp_seconds": ramp, "endpoints": self.stats.summary(started + ramp),
                                  "errors_sample": self.stats.error_sample}
        if self.cluster_id:
            result["statuses"] = await self.statuses()
        if installed_at is not None:
            result["install_started_after"] = installed_at - started
        return result

    async def _install_when_known(self) -> float | None:
        """Start the installation once every host is known; end the run once every host is installed."""
        started = None
        while time.monotonic() < self.stop_at - 2:
            await asyncio.sleep(2)
            if self.registered < self.opts.hosts:
                continue
            counts = await self.statuses()
            if started is None and counts.get("known") == self.opts.hosts:
                await self._user("POST", f"{BASE}/clusters/{self.cluster_id}/actions/install")
                started = time.monotonic()
            elif started is not None and counts.get("installed") == self.opts.hosts:
                self.stop_at = time.monotonic()
                self.stopped.set()
                break
        return started


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(opts: Options) -> dict[str, Any]:
    _raise_open_files()
    sampler = ProcessSampler.for_service(opts.url, opts.service_pid)
    connector = aiohttp.TCPConnector(limit=0, force_close=False, ttl_dns_cache=None)
    gc_policy.settle_after_startup()
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=end_with_parent, initargs=(os.getpid(),)) as workers:
        return await _run(opts, connector, sampler, workers)


async def _run(opts: Options, connector: aiohttp.TCPConnector, sampler: ProcessSampler | None,
               workers: concurrent.futures.Executor) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=connector) as session:
        swarm = Swarm(opts, session, workers=workers)
        sampler_task = asyncio.create_task(sampler.run()) if sampler else None
        lag = LoopLag()
        lag_task = asyncio.create_task(lag.run())
        result = await swarm.run()
        lag_task.cancel()
        result["swarm"] = lag.summary()
        if sampler_task is not None:
            sampler_task.cancel()
            result["service"] = sampler.summary(result["endpoints"].get("poll", {}).get("count", 0))  # type: ignore[union-attr]
    return result


async def _stoppable(opts: Options) -> dict[str, Any]:
    """run(), cancelled by SIGTERM or SIGINT: the worker pool is then shut down on the way out (the signal's
    default action left the worker and multiprocessing's resource tracker running)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await run(opts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assisted-reference-service swarm", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8090", help="the service (default http://127.0.0.1:8090)")
    p.add_argument("--hosts", type=int, default=10, help="simulated hosts (default 10)")
    p.add_argument("--interval", type=float, help="seconds between a host's polls (default: what the service says)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds the swarm runs (default 60)")
    p.add_argument("--install", action="store_true", help="install the cluster (dry run) once all hosts are known")
    p.add_argument("--saturate", action="store_true", help="poll back to back")
    p.add_argument("--infra-env-id", help="join this infra-env instead of creating a cluster and an infra-env")
    p.add_argument("--token", default="", help="agent token (X-Secret-Key) of the infra-env")
    p.add_argument("--admin-token", default="", help="user token (Authorization: Bearer) for the setup")
    p.add_argument("--seed", default="swarm", help="names hosts and ids; the same seed gives the same hosts")
    p.add_argument("--service-pid", type=int, help="measure this process (default: whoever listens on the URL)")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if not 0 < ns.hosts <= machine.MAX_HOSTS:
        print(f"swarm: --hosts must be between 1 and {machine.MAX_HOSTS}", file=sys.stderr)
        return 2
    if urlsplit(ns.url).scheme not in ("http", "https"):
        print("swarm: --url must be an http(s) URL", file=sys.stderr)
        return 2
    opts = Options(url=ns.url.rstrip("/"), hosts=ns.hosts, interval=ns.interval, duration=ns.duration,
                   install=ns.install, saturate=ns.saturate, infra_env_id=ns.infra_env_id, token=ns.token,
                   admin_token=ns.admin_token, seed=ns.seed, service_pid=ns.service_pid)
    try:  # as the service does: most of a big poll's time was the swarm's (inside the service p50 2.2 ms, 7 here)
        import uvloop
    except ModuleNotFoundError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        result = runner(_stoppable(opts))
    except asyncio.CancelledError:
        print("swarm: stopped by a signal; its worker process is ended", file=sys.stderr)
        return 143
    except (aiohttp.ClientError, OSError) as exc:
        print(f"swarm: cannot reach the service at {ns.url}: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    if ns.json:
        with open(ns.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0 if result["registered"] == ns.hosts else 1
