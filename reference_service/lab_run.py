"""The lab's run, inside its own network namespace (``reference_service.lab`` built the agent image, the ISO and
the OS image outside it, then started this there): the network's services, the agent image in the lab's
registry, the service, the cluster and infra-env, the ISO through the API, the machines, and the hosts followed
to ``known``. Each phase's time and what was seen go to lab-report.json."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from reference_service import lab_install, lab_net, lab_qemu
from reference_service.lab_console import ConsoleClock
from reference_service.lab_qemu import Machine, MachineSpec
from rules.user_checks import SAMPLE_PULL_SECRET

ROOT = Path(__file__).resolve().parents[1]
BASE = "/api/assisted-install"
SERVICE_PORT = 8090
LAB_IMAGE = f"{lab_net.REGISTRY}/assisted-agent:latest"
#: A host's statuses once its inventory is in: what it lacks, if anything, is the hardware's or the cluster's.
DISCOVERED = {"insufficient", "known", "pending-for-input"}


def say(text: str) -> None:
    print(f"lab: {text}", flush=True)


class Lab:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.work = Path(ns.work)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.machines: list[Machine] = []
        self.clocks: dict[str, ConsoleClock] = {}
        self.phases: dict[str, float] = {}
        self.started = time.monotonic()
        self.mark = self.started
        self.url = ns.url or f"http://{lab_net.GATEWAY}:{SERVICE_PORT}"
        self.http = requests.Session()
        self.accel = "tcg"
        self.report: dict[str, Any] = {"phases": self.phases, "machines": [], "hosts": []}

    # -- bookkeeping --------------------------------------------------------------------------------
    def phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self.mark, 1)
        self.mark = now
        say(f"{name}: {self.phases[name]:.1f} s")
        self.save()

    def save(self) -> None:
        self.report["machines"] = [vars(m.spec) for m in self.machines]
        self.report["consoles"] = {name: clock.seen for name, clock in self.clocks.items()}
        (self.work / "lab-report.json").write_text(json.dumps(self.report, indent=2, default=str))

    def spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.work / log, "ab") as fh:
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def api(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, self.url + BASE + path, timeout=60, **kw)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self.prepare()
            self.network()
            self.service()
            self.discovery_iso()
            self.boot()
            ok = self.follow()
            if ok and self.ns.until == "installed":
                ok = lab_install.install(self, time.monotonic() + self.ns.timeout)
            if self.ns.keep_running:
                say(f"running; the service is {self.url} in namespace {self.ns.namespace}; Ctrl-C stops it all")
                signal.pause()
            return 0 if ok else 1
        finally:
            self.stop()

    def prepare(self) -> None:
        """What ``reference_service.lab`` built before it made this namespace (no way out here, so no build)."""
        if not (self.ns.iso and self.ns.os_image):
            raise RuntimeError("the lab's run inside its namespace is given --iso and --os-image by "
                               "reference_service.lab, which builds them outside it")
        self.iso_built, self.os_image = Path(self.ns.iso), Path(self.ns.os_image)
        self.phases["build"] = self.ns.build_seconds
        say(f"build: {self.ns.build_seconds:.1f} s (outside the lab's namespace)")
        self.save()

    def network(self) -> None:
        ns = self.ns
        lab_net.bridge_up()
        names = lab_net.Names("lab", "example.com")
        for i in range(ns.hosts):
            spec = MachineSpec(index=i, name=f"lab-{i}", mac=lab_qemu.mac_of(i), ipv4=f"{lab_net.SUBNET}.{10 + i}",
                               memory_mib=ns.memory, cpus=ns.cpus, disk_bytes=ns.disk_size * 10**9,
                               disk_serial=f"LABDISK{i:04d}")
            lab_net.add_tap(spec.tap)
            self.machines.append(Machine(spec, self.work / f"{spec.name}.disk", self.work / f"{spec.name}.console"))
        self.spawn(lab_net.dnsmasq_argv(self.work, [m.spec for m in self.machines], names), "dnsmasq.out")
        self.spawn(lab_net.chrony_argv(self.work), "chronyd.log")
        self.spawn(lab_net.registry_argv(self.work), "registry.log")
        self.wait_for(lambda: self.reachable(f"http://{lab_net.REGISTRY}/v2/"), 30, "the registry")
        push = subprocess.run(["podman", "push", "--quiet", "--tls-verify=false", self.ns.agent_image,
                               f"docker://{LAB_IMAGE}"], capture_output=True, text=True, timeout=1200)
        if push.returncode != 0:
            raise RuntimeError(f"podman push to the lab's registry: {push.stderr[-500:]}")
        self.phase("network")

    def service(self) -> None:
        if self.ns.url:
            return
        ready = self.work / "service.url"
        ready.unlink(missing_ok=True)
        argv = [str(Path(sys.executable).parent / "assisted-reference-service"), "--host", lab_net.GATEWAY,
                "--port", str(SERVICE_PORT), "--db", str(self.work / "service.db"), "--next-step-seconds", "5",
                "--discovery-iso", str(self.iso_built), "--agent-image", LAB_IMAGE,
                "--insecure-registry", lab_net.REGISTRY, "--ready-file", str(ready)]
        argv += ["--os-image", str(self.os_image)]
        self.spawn(argv, "service.log")
        self.wait_for(ready.exists, 60, "the service")
        self.phase("service")

    def discovery_iso(self) -> None:
        hosts = self.ns.hosts
        cluster = self.api("POST", "/v2/clusters", json={
            "name": "lab", "openshift_version": "4.18", "base_dns_domain": "example.com",
            "pull_secret": SAMPLE_PULL_SECRET,
            "high_availability_mode": "None" if hosts == 1 else "Full",
            "machine_networks": [{"cidr": f"{lab_net.SUBNET}.0/24"}]})
        infra = self.api("POST", "/v2/infra-envs", json={"name": "lab", "cluster_id": cluster["id"],
                                                         "pull_secret": SAMPLE_PULL_SECRET,
                                                         "image_type": self.ns.image_type})
        self.cluster_id, self.infra_env_id = cluster["id"], infra["id"]
        lab_install.ignore_validations(self, self.ns.ignore_validations)
        presigned = self.api("GET", f"/v2/infra-envs/{infra['id']}/downloads/image-url")
        self.iso = self.work / "discovery.iso"
        with self.http.get(presigned["url"], stream=True, timeout=600) as resp:
            resp.raise_for_status()
            with open(self.iso, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
        self.report.update(cluster_id=cluster["id"], infra_env_id=infra["id"], image_url=presigned["url"],
                           iso_bytes=self.iso.stat().st_size)
        say(f"cluster {cluster['id']}, infra-env {infra['id']}, ISO {self.iso.stat().st_size >> 20} MiB")
        self.phase("iso")

    def boot(self) -> None:
        self.accel = self.choose_accel()
        for m in self.machines:
            lab_qemu.make_disk(m.disk, m.spec.disk_bytes)
            lab_qemu.start(m, iso=self.iso, accel=self.accel, prefix=[])
            self.clocks[m.spec.name] = ConsoleClock(m.console, time.monotonic()).start()
            assert m.proc is not None
            self.procs.append(m.proc)
        self.report["accel"] = self.accel
        say(f"booted {len(self.machines)} machine(s) with {self.accel}; consoles in {self.work}")
        self.phase("boot")

    def choose_accel(self) -> str:
        if self.ns.kvm == "off":
            return "tcg"
        kernel = self.work / "vmlinuz"
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(self.iso), "-extract", "/live/vmlinuz",
                        str(kernel)], check=True, capture_output=True, timeout=120)
        works, why = lab_qemu.probe_kvm(kernel, self.work)
        self.report["kvm_probe"] = why
        say(f"KVM probe: {why}")
        if self.ns.kvm == "on" and not works:
            raise RuntimeError(f"--kvm on, but {why}")
        return "kvm" if works else "tcg"

    def follow(self) -> bool:
        """Statuses as they change, until every host is there (``--until``), or the timeout."""
        deadline = time.monotonic() + self.ns.timeout
        seen: dict[str, str] = {}
        registered = False
        until = "known" if self.ns.until == "installed" else self.ns.until
        wanted = {"registered": None, "discovered": DISCOVERED, "known": {"known"}}[until]
        while time.monotonic() < deadline:
            self.check_machines()
            hosts = self.api("GET", f"/v2/infra-envs/{self.infra_env_id}/hosts")
            for h in hosts:
                if seen.get(h["id"]) != h["status"]:
                    seen[h["id"]] = h["status"]
                    say(f"host {h.get('requested_hostname') or h['id']}: {h['status']} ({h.get('status_info', '')})")
            if len(hosts) == len(self.machines) and not registered:
                registered = True
                self.phase("registered")
            if registered and (wanted is None or all(h["status"] in wanted for h in hosts)):
                if wanted:
                    self.phase(until)
                self.report["hosts"] = hosts
                self.save()
                return True
            self.report["hosts"] = hosts
            time.sleep(3)
        say(f"timed out after {self.ns.timeout:.0f} s; statuses: {seen}")
        self.save()
        return False

    # -- helpers ------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        say(text)

    def check_machines(self) -> None:
        for m in self.machines:
            if m.proc is not None and m.proc.poll() is not None:
                raise RuntimeError(f"{m.spec.name}'s QEMU exited: see {m.console.with_suffix('.qemu.log')}")

    def reachable(self, url: str) -> bool:
        try:
            return self.http.get(url, timeout=5).status_code < 500
        except requests.RequestException:
            return False

    def wait_for(self, check: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {seconds:.0f} s (logs in {self.work})")
            time.sleep(0.2)

    def stop(self) -> None:
        for m in self.machines:
            lab_qemu.stop(m)
        for clock in self.clocks.values():
            clock.stop()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.save()
