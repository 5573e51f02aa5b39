"""The real assisted-service (Go, openshift/assisted-service) on this machine, driven by our swarm and by the
generated client (``assisted-service-client``): what our clients do against the service they imitate.

    .venv/bin/python bench/real_service.py --binary PATH [--hosts 3,10] [--duration 240] [--no-client-session]

Not part of CI, and not a test: building the service takes a Go 1.26+ toolchain, the service's vendored
modules and about 15 minutes of 2 busy cores (docs/real-service.md says how; bench/real_service_build.sh does
it), and it needs PostgreSQL. It runs as root, because everything runs inside a network namespace of its own
(``real-<pid>``) whose only interface is its loopback: PostgreSQL (as the ``postgres`` user, on a private port
and socket directory), the service (AUTH_TYPE none, onprem, filesystem storage, release and OS images named but
never fetched: nothing outside the namespace can be reached, so nothing can leave this machine), the swarm and
the client session. Each swarm size gets a fresh database. Prints, per size: seconds from the first registration
to every host ``known`` and the validations still failing if they never all were; the swarm's endpoint figures;
then the client session's calls (bench/real_client_session.py). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 54325
SERVICE_PORT = 8090
API = "/api/assisted-install/v2"
#: Only the version the swarm and the session ask for: the service offers what RELEASE_IMAGES lists.
RELEASE_IMAGES = [
    {"openshift_version": "4.20", "cpu_architecture": "x86_64", "cpu_architectures": ["x86_64"],
     "url": "quay.io/openshift-release-dev/ocp-release:4.20.33-x86_64", "version": "4.20.33", "default": True},
    {"openshift_version": "4.18", "cpu_architecture": "x86_64", "cpu_architectures": ["x86_64"],
     "url": "quay.io/openshift-release-dev/ocp-release:4.18.52-x86_64", "version": "4.18.52"},
]
OS_IMAGES = [
    {"openshift_version": v, "cpu_architecture": "x86_64", "version": f"{v.replace('.', '')}.0",
     "url": f"https://mirror.example.com/rhcos-{v}-x86_64-live.x86_64.iso"} for v in ("4.18", "4.20")]
#: The hardware minimums of the service's own podman deployment (deploy/podman/configmap.yml).
HW_REQUIREMENTS = [{"version": "default",
                    "master": {"cpu_cores": 4, "ram_mib": 16384, "disk_size_gb": 100,
                               "installation_disk_speed_threshold_ms": 10, "network_latency_threshold_ms": 100,
                               "packet_loss_percentage": 0},
                    "arbiter": {"cpu_cores": 2, "ram_mib": 8192, "disk_size_gb": 50,
                                "installation_disk_speed_threshold_ms": 10, "network_latency_threshold_ms": 1000,
                                "packet_loss_percentage": 0},
                    "worker": {"cpu_cores": 2, "ram_mib": 8192, "disk_size_gb": 100,
                               "installation_disk_speed_threshold_ms": 10, "network_latency_threshold_ms": 1000,
                               "packet_loss_percentage": 10},
                    "sno": {"cpu_cores": 8, "ram_mib": 16384, "disk_size_gb": 100,
                            "installation_disk_speed_threshold_ms": 10},
                    "edge-worker": {"cpu_cores": 2, "ram_mib": 8192, "disk_size_gb": 15,
                                    "installation_disk_speed_threshold_ms": 10}}]


def service_env(work: Path) -> dict[str, str]:
    """The service's configuration: its podman deployment's, on loopback, with no image ever fetched."""
    base = f"http://127.0.0.1:{SERVICE_PORT}"
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(work),
        "DB_HOST": "127.0.0.1", "DB_PORT": str(PG_PORT), "DB_USER": "admin", "DB_PASS": "admin",
        "DB_NAME": "installer", "AUTH_TYPE": "none", "DEPLOY_TARGET": "onprem", "DEPLOYMENT_TYPE": "Podman",
        "STORAGE": "filesystem", "WORK_DIR": str(work / "data"), "SERVICE_BASE_URL": base,
        "IMAGE_SERVICE_BASE_URL": "http://127.0.0.1:8888", "ASSISTED_SERVICE_HOST": f"127.0.0.1:{SERVICE_PORT}",
        "ASSISTED_SERVICE_SCHEME": "http", "OS_IMAGES": json.dumps(OS_IMAGES),
        "RELEASE_IMAGES": json.dumps(RELEASE_IMAGES), "HW_VALIDATOR_REQUIREMENTS": json.dumps(HW_REQUIREMENTS),
        "PUBLIC_CONTAINER_REGISTRIES": "quay.io,registry.ci.openshift.org", "NTP_DEFAULT_SERVER": "",
        "IPV6_SUPPORT": "true", "ISO_IMAGE_TYPE": "full-iso", "DISK_ENCRYPTION_SUPPORT": "true",
        "ENABLE_UPGRADE_AGENT": "true", "DUMMY_IGNITION": "false", "ENABLE_SINGLE_NODE_DNSMASQ": "true",
        "BASE_DNS_DOMAINS": "", "LOG_LEVEL": "info",
    }


def _stop(proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """SIGTERM to the process we started, by its PID; SIGKILL if it outlives ``seconds``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait(what: str, probe: Any, seconds: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Seconds until ``probe()`` is true; SystemExit naming ``what`` after ``seconds`` or if ``proc`` dies."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"real_service: {what}: the process ended ({proc.returncode})")
        with contextlib.suppress(Exception):
            if probe():
                return time.monotonic() - start
        time.sleep(0.5)
    raise SystemExit(f"real_service: {what}: not within {seconds} s")


@contextlib.contextmanager
def postgres(work: Path) -> Iterator[None]:
    """A PostgreSQL cluster of our own (the service's database ``installer``, user ``admin``)."""
    pg = work / "pg"
    (pg / "sock").mkdir(parents=True)
    shutil.chown(pg, "postgres", "postgres")
    shutil.chown(pg / "sock", "postgres", "postgres")
    secret = pg / "pw"
    secret.write_text("admin")
    secret.chmod(0o600)
    shutil.chown(secret, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(pg / "data"), "-U", "admin", f"--pwfile={secret}",
                    "-A", "scram-sha-256"], check=True, stdout=subprocess.DEVNULL)
    with open(work / "postgres.log", "wb") as log:
        proc = subprocess.Popen([*as_pg, str(PG_BIN / "postgres"), "-D", str(pg / "data"), "-k", str(pg / "sock"),
                                 "-p", str(PG_PORT), "-h", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        env = {**os.environ, "PGPASSWORD": "admin"}
        psql = ["psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "admin", "-d", "postgres", "-qc"]
        _wait("PostgreSQL", lambda: subprocess.run([*psql, "select 1"], env=env, capture_output=True).returncode
              == 0, 60, proc)
        subprocess.run([*psql, "create database installer"], env=env, check=True)
        yield
    finally:
        _stop(proc)


@contextlib.contextmanager
def real_service(binary: Path, work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """(URL, process, seconds to the first answer of /v2/clusters) of the real service on a fresh database."""
    (work / "data").mkdir(parents=True)
    start = time.monotonic()
    with postgres(work), open(work / "service.log", "wb") as log:
        proc = subprocess.Popen([str(binary), "--port", str(SERVICE_PORT)], env=service_env(work), cwd=work,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{SERVICE_PORT}"
        try:
            _wait("the service's /v2/clusters", lambda: requests.get(url + API + "/clusters", timeout=5).ok,
                  300, proc)
            yield url, proc, time.monotonic() - start
        finally:
            _stop(proc)


@contextlib.contextmanager
def reference_service(work: Path) -> Iterator[str]:
    """Our reference service on the same loopback (no auth, every step issued, the real service's 60 s)."""
    ready = work / "reference-url"
    env = {**os.environ, "DISABLED_STEPS": ""}
    with open(work / "reference.log", "wb") as log:
        proc = subprocess.Popen([str(BIN / "assisted-reference-service"), "--port", "0", "--db",
                                 str(work / "reference.db"), "--next-step-seconds", "60", "--ready-file", str(ready),
                                 "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait("the reference service", ready.exists, 60, proc)
        yield ready.read_text().strip()
    finally:
        _stop(proc)


def failing_validations(host: dict[str, Any]) -> list[str]:
    """``group/id: message`` of each of the host's validations that is not a success."""
    info = json.loads(host.get("validations_info") or "{}")
    return [f"{group}/{v['id']}: {v.get('message', '')}" for group, items in sorted(info.items()) for v in items
            if v.get("status") not in ("success", "disabled")]


def swarm_to_known(url: str, hosts: int, duration: float, work: Path, interval: float | None) -> dict[str, Any]:
    """Our swarm's own cluster on the real service: seconds until every host is known, the figures."""
    out = work / f"swarm-{hosts}.json"
    cmd = [str(BIN / "assisted-reference-service"), "swarm", "--url", url, "--hosts", str(hosts), "--duration",
           str(duration), "--seed", f"real{hosts}", "--json", str(out)]
    if interval is not None:
        cmd += ["--interval", str(interval)]
    started = time.monotonic()
    with open(work / f"swarm-{hosts}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    known_after: float | None = None
    last: list[dict[str, Any]] = []
    try:
        while proc.poll() is None and time.monotonic() - started < duration + 60:
            time.sleep(2)
            with contextlib.suppress(requests.RequestException, ValueError, KeyError, IndexError):
                cluster = requests.get(url + API + "/clusters", timeout=10).json()[-1]
                last = requests.get(f"{url}{API}/clusters/{cluster['id']}", timeout=10).json().get("hosts") or []
                if known_after is None and len(last) == hosts and all(h["status"] == "known" for h in last):
                    known_after = time.monotonic() - started
    finally:
        _stop(proc, duration + 60)
    result: dict[str, Any] = {"hosts": hosts, "known_after_s": known_after, "swarm_exit": proc.returncode,
                              "statuses": {}, "failing": {}}
    for h in last:
        result["statuses"][h["status"]] = result["statuses"].get(h["status"], 0) + 1
        for line in failing_validations(h):
            result["failing"][line] = result["failing"].get(line, 0) + 1
    if out.exists():
        result["figures"] = json.loads(out.read_text())
    return result


def _print(result: dict[str, Any], service: str = "the real service") -> None:
    known = result["known_after_s"]
    verdict = f"all known after {known:.1f} s" if known is not None else "not all known"
    print(f"\n== swarm of {result['hosts']} hosts on {service}: {verdict}; "
          f"statuses {result['statuses']}")
    for line, count in sorted(result["failing"].items()):
        print(f"   {count} x {line}")
    figures = result.get("figures") or {}
    for name, ep in sorted(figures.get("endpoints", {}).items()):
        print(f"   {name:10} n={ep['count']:6} p50 {1000 * ep['p50']:7.1f} ms  p99 {1000 * ep['p99']:7.1f} ms  "
              f"errors {ep['errors']}")
    measured = figures.get("service") or {}
    if measured:
        print(f"   service: RSS max {measured.get('rss_max_mib', 0):.0f} MiB, "
              f"CPU {measured.get('cpu_seconds', 0):.1f} s ({measured.get('cpu_ms_per_poll', 0):.0f} ms a poll)")
    for sample in (figures.get("errors_sample") or [])[:5]:
        print(f"   error: {sample}")


def inside(args: argparse.Namespace) -> int:
    """The run itself, inside the namespace."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    stamp = args.binary.with_name(args.binary.name + ".commit")
    commit = stamp.read_text().strip() if stamp.exists() else "(commit unknown: no .commit file beside it)"
    print(f"real assisted-service {commit}: {args.binary}")
    for hosts in [int(n) for n in args.hosts.split(",")]:
        work = Path(tempfile.mkdtemp(prefix=f"real-service-{hosts}-"))
        work.chmod(0o711)  # PostgreSQL runs as its own user beneath it
        try:
            with real_service(args.binary, work) as (url, _, up):
                print(f"\nservice answering /v2/clusters {up:.1f} s after PostgreSQL's start (work: {work})")
                real = swarm_to_known(url, hosts, args.duration, work, args.interval)
                _print(real)
            if args.beside_reference:
                (work / "reference").mkdir()
                with reference_service(work / "reference") as ref_url:
                    ours = swarm_to_known(ref_url, hosts, args.duration, work / "reference", args.interval)
                _print(ours, "our reference service")
                if real["known_after_s"] and ours["known_after_s"]:
                    print(f"   all known: real {real['known_after_s']:.1f} s, reference {ours['known_after_s']:.1f} s "
                          f"(ratio reference/real {ours['known_after_s'] / real['known_after_s']:.2f})")
            if not args.no_client_session and hosts == int(args.hosts.split(",")[0]):
                with real_service(args.binary, work / "session") as (url, _, _):
                    sys.path.insert(0, str(HERE))
                    import real_client_session
                    real_client_session.main(url, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", type=Path, required=True, help="the assisted-service binary (cmd/ of the service)")
    p.add_argument("--hosts", default="3,10", help="swarm sizes, comma-separated (default 3,10)")
    p.add_argument("--duration", type=float, default=240.0, help="seconds each swarm runs (default 240)")
    p.add_argument("--interval", type=float, help="seconds between a host's polls (default: the service's, 60)")
    p.add_argument("--beside-reference", action="store_true",
                   help="also run each swarm against our reference service, for the figures beside")
    p.add_argument("--no-client-session", action="store_true", help="only the swarm")
    p.add_argument("--keep", action="store_true", help="keep the work directories (logs, database)")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.binary = args.binary.resolve()
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        print("real_service: needs root (a network namespace, PostgreSQL as its own user)", file=sys.stderr)
        return 2
    ns = f"real-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside", *sys.argv[1:]],
                              env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
