"""``assisted-reference-service lab``: a lab of QEMU machines booted from the discovery ISO, on one machine.

    assisted-reference-service lab [--hosts 1] [--memory 4096] [--cpus 1] [--disk-size 120] [--kvm auto|on|off]
                                   [--url URL] [--iso PATH] [--agent-image IMAGE] [--pull] [--os-image PATH]
                                   [--image-type full-iso|minimal-iso]
                                   [--until registered|discovered|known|installed] [--ignore-validations IDS]
                                   [--work DIR] [--timeout S] [--keep-running]

What a person building a test lab from virtual machines does, with no libvirt or Terraform: a bridge in a network
namespace of its own with DHCP and DNS (dnsmasq: ``api``, ``api-int``, ``*.apps``), an NTP server and a registry
holding the agent image; the reference service (or ``--url``); a cluster and an infra-env created through the
API; the ISO downloaded from ``downloads/image-url`` as a client does; N machines booted from it. It then
follows the hosts through discovery and, by default, installs them (``reference_service.lab_install``: the lab's
OS image written to their disks, rebooted into, reporting done) and prints their statuses, and writes
``lab-report.json`` in the work directory (phases' times, what QEMU was told, the inventories the hosts
reported; bench/lab.py reads it).

The agent image, the ISO and the OS image are built first (once; cached in ``.image-cache/``), here, in this
machine's network namespace, where Debian's mirror is reachable (``reference_service.lab_build``). Then the
program re-executes itself inside a namespace it makes (``ip netns exec``), so that the service, dnsmasq, the
registry and QEMU's tap devices all live there, and removes the namespace on the way out, also on Ctrl-C or
SIGTERM. Needs root, qemu-system-x86, dnsmasq, chrony, docker-registry, podman (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common.argparser import Parser
from common.errors import ConfigError
from common.usage import run_main
from reference_service.lab_build import build
from reference_service.lab_install import HARDWARE_VALIDATIONS
from reference_service.lab_run import say

PROG = "assisted-reference-service lab"
INSIDE_ENV = "ASSISTED_LAB_INSIDE"


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[2].strip())
    p.add_argument("--hosts", type=int, default=1, help="machines to boot (default 1)")
    p.add_argument("--memory", type=int, default=4096, help="MiB of memory per machine (default 4096)")
    p.add_argument("--cpus", type=int, default=1, help="CPUs per machine (default 1: under TCG two emulated CPUs "
                   "on a busy machine stall each other's spinlocks)")
    p.add_argument("--disk-size", type=int, default=120, help="GB of each machine's sparse disk (default 120)")
    p.add_argument("--kvm", choices=["auto", "on", "off"], default="auto",
                   help="auto: probe KVM briefly and use TCG where a guest hangs (default); on; off (TCG)")
    p.add_argument("--url", help="use this running service (reachable from the lab's namespace) instead of "
                   "starting one")
    p.add_argument("--iso", help="the built ISO to serve (default: container/iso/build-iso.sh's, built once)")
    p.add_argument("--agent-image", default="localhost/assisted-agent:latest",
                   help="the agent image, in podman's store, pushed to the lab's registry (default "
                   "localhost/assisted-agent:latest, built with container/build.sh when missing)")
    p.add_argument("--pull", action="store_true",
                   help="hosts pull the agent image from the lab's registry (default: the ISO carries it, built once "
                   "per agent image, and hosts start it at once; an emulated CPU takes ten minutes to pull it)")
    p.add_argument("--image-type", choices=["full-iso", "minimal-iso"], default="full-iso",
                   help="the infra-env's image type: full-iso (default) or minimal-iso (kernel and initrd; the root "
                   "file system is fetched from the service at boot, and the agent image pulled from the registry)")
    p.add_argument("--os-image", help="OS image installs write (default: container/os-image/build-os-image.sh's, "
                   "built once: Debian on a raw disk whose first boot reports the host done)")
    p.add_argument("--ignore-validations", type=_ids, default=list(HARDWARE_VALIDATIONS), metavar="IDS",
                   help="host validations the cluster ignores, comma-separated, or 'none' (default: the role's "
                   "cores and memory, which small virtual machines lack)")
    p.add_argument("--work", help="directory for disks, consoles, logs and lab-report.json (default: a new one "
                   "in /var/tmp)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the hosts (default 1800)")
    p.add_argument("--until", choices=["registered", "discovered", "known", "installed"], default="installed",
                   help="stop waiting once every host is registered, discovered (its inventory in: insufficient, "
                   "pending-for-input or known), known, or installed: the installation started once every host "
                   "is known, the OS image written, the machines rebooted into it and reported done (default)")
    p.add_argument("--keep-running", action="store_true", help="leave it all running until Ctrl-C")
    p.add_argument("--namespace", default=f"lab-{os.getpid()}", help=argparse.SUPPRESS)
    p.add_argument("--build-seconds", type=float, default=0.0, help=argparse.SUPPRESS)  # for the inner run's report
    return p


def _ids(text: str) -> list[str]:
    return [] if text.strip() == "none" else [i.strip() for i in text.split(",") if i.strip()]


def check(ns: argparse.Namespace) -> None:
    if not 1 <= ns.hosts <= 50:
        raise ConfigError(f"--hosts {ns.hosts}: 1 to 50 machines", hint="each needs --memory MiB of this machine")
    if ns.memory < 1024 or ns.cpus < 1 or ns.disk_size < 1:
        raise ConfigError("--memory is at least 1024 MiB, --cpus and --disk-size at least 1")
    if os.geteuid() != 0:
        raise ConfigError("the lab needs root (network namespaces, tap devices)", hint="run it as root")
    for tool in ("qemu-system-x86_64", "dnsmasq", "chronyd", "docker-registry", "podman", "xorriso", "ip"):
        if not shutil.which(tool):
            raise ConfigError(f"{tool} is not installed", hint="bash scripts/setup.sh installs what the lab needs")
    for flag, path in (("--iso", ns.iso), ("--os-image", ns.os_image)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{flag} {path}: no such file", hint="check the path")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return run_main(PROG, lambda: _main(args))


def _main(args: list[str]) -> int:
    ns = parser().parse_args(args)
    check(ns)
    if os.environ.get(INSIDE_ENV) == ns.namespace:
        from reference_service.lab_run import Lab

        return Lab(ns).run()
    work = Path(ns.work or tempfile.mkdtemp(prefix="assisted-lab-", dir="/var/tmp")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # Every build before the namespace exists: debootstrap, apt and pip need the way out the namespace lacks.
    built = build(ns, say)
    inner = [sys.executable, "-m", "reference_service.lab", *args, "--work", str(work), "--namespace", ns.namespace,
             "--iso", str(built.iso), "--os-image", str(built.os_image), "--build-seconds", str(built.seconds)]
    subprocess.run(["ip", "netns", "add", ns.namespace], check=True, capture_output=True, timeout=30)
    proc = None
    try:
        proc = subprocess.Popen(["ip", "netns", "exec", ns.namespace, *inner], start_new_session=True,
                                env={**os.environ, INSIDE_ENV: ns.namespace})

        def forward(signum: int, _frame: object) -> None:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        return proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        subprocess.run(["ip", "netns", "del", ns.namespace], capture_output=True, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
