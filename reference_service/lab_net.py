"""The lab's network, inside the lab's own network namespace: a bridge, and the services a lab's hosts expect.

Run by ``reference_service.lab`` from inside that namespace (it re-executes itself there), so every address here
lives in a namespace this program made and nothing reaches the machine's networks:

- bridge ``labbr0`` at ``SUBNET.1``; each machine's tap device joins it;
- dnsmasq: DHCP with a fixed address and name per MAC, DNS for the cluster's ``api``, ``api-int`` and
  ``*.apps`` names (and nothing forwarded: ``--no-resolv``), the NTP server named in DHCP;
- chronyd: an NTP server (local stratum, the clock untouched), so hosts pass the service's NTP validation;
- Debian's docker-registry: the registry the hosts pull the agent image from, as real hosts pull from theirs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from reference_service.lab_qemu import MachineSpec

SUBNET = "192.168.126"
BRIDGE = "labbr0"
GATEWAY = f"{SUBNET}.1"
API_VIP = f"{SUBNET}.5"
INGRESS_VIP = f"{SUBNET}.6"
REGISTRY = f"{GATEWAY}:5000"


def run(argv: list[str], timeout: float = 60) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()[-500:]}")


def bridge_up() -> None:
    run(["ip", "link", "set", "lo", "up"])
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def add_tap(tap: str) -> None:
    run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
    run(["ip", "link", "set", tap, "master", BRIDGE])
    run(["ip", "link", "set", tap, "up"])


@dataclass
class Names:
    cluster: str
    domain: str

    @property
    def zone(self) -> str:
        return f"{self.cluster}.{self.domain}"


def dnsmasq_argv(work: Path, machines: list[MachineSpec], names: Names) -> list[str]:
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", f"--interface={BRIDGE}",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--group=root",
            f"--pid-file={work / 'dnsmasq.pid'}", f"--dhcp-leasefile={work / 'dnsmasq.leases'}",
            f"--log-facility={work / 'dnsmasq.log'}", "--log-dhcp", f"--domain={names.zone}",
            f"--dhcp-range={SUBNET}.100,{SUBNET}.199,12h", f"--dhcp-option=option:router,{GATEWAY}",
            f"--dhcp-option=option:dns-server,{GATEWAY}", f"--dhcp-option=option:ntp-server,{GATEWAY}",
            f"--address=/api.{names.zone}/{API_VIP}", f"--address=/api-int.{names.zone}/{API_VIP}",
            f"--address=/apps.{names.zone}/{INGRESS_VIP}"]
    for m in machines:
        argv.append(f"--dhcp-host={m.mac},{m.ipv4},{m.name}")
        argv.append(f"--host-record={m.name}.{names.zone},{m.name},{m.ipv4}")
    return argv


def chrony_argv(work: Path) -> list[str]:
    conf = work / "chrony.conf"
    conf.write_text(f"local stratum 8\nallow {SUBNET}.0/24\nbindaddress {GATEWAY}\ncmdport 0\n"
                    f"pidfile {work / 'chronyd.pid'}\ndriftfile {work / 'chrony.drift'}\n")
    return ["chronyd", "-d", "-x", "-f", str(conf)]


def registry_argv(work: Path) -> list[str]:
    conf = work / "registry.yml"
    (work / "registry").mkdir(exist_ok=True)
    conf.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {work / 'registry'}\n  delete:\n    enabled: true\n"
                    f"http:\n  addr: {REGISTRY}\n")
    return ["docker-registry", "serve", str(conf)]
