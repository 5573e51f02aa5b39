"""A multi-host test network made of Linux network namespaces.

Why: network steps must be proven against real kernels answering ARP, neighbour discovery and ICMP, with
real packet loss and MTU mismatches, without ever sending a packet off this machine. Every address used
lives inside namespaces created here.

Layout::

    hub namespace  <name>-hub   bridge "anetbr0" (10.201.0.1/24, fd42:201::1/64); the reference service runs here
       |  veth "anet<h>n<n>" (hub side)  <->  "eth<n>" (host side)
    host namespaces <name>-h<h>  eth0 10.201.0.<10+h>/24, fd42:201::<10+h>/64, default route via the hub

API (all names and waits are bounded; everything is removed on exit, on interpreter exit, and stale
leftovers of dead test processes are swept when a new network starts)::

    from tests.support.netns import Network, Nic

    with Network() as net:                        # needs root; names start with "anet"
        a = net.add_host()                        # one NIC: eth0 with the next free IPv4 (+ IPv6 with ipv6=True)
        b = net.add_host(nics=[Nic(mtu=9000), Nic(ipv4="10.201.0.99/24")], ipv6=True)   # two NICs
        a.run(["ping", "-c1", b.ipv4]).returncode  # a command inside a host namespace (argv, never a shell)
        b.set_loss(30)                            # exactly 3 of every 10 IP packets b sends are dropped
        b.cut()                                   # link down on the hub side: b is unreachable
        b.restore()
        net.hub.run([...])                        # the hub namespace is a Namespace too
        with net.start_service(tmp_path) as svc:  # the reference service inside the hub (tests.support.service);
            # svc.url serves the test (root namespace), svc.agent_url the hosts
            with a.start_agent(svc.agent_url, infra_env_id) as proc: ...   # a real agent inside host a
        reply = a.step("connectivity-check", [json.dumps(params)])   # `agent step --wire` inside a host
        with net.start_dns(["--host-record=api.c.example.com,10.201.0.5"], tmp_path): ...
                                                  # dnsmasq in the hub, the hosts' nameserver
        b.set_resolv_conf("nameserver ...\n")     # /etc/netns/<ns>/resolv.conf, removed with the network
        sock = socket_in(net.hub.name)            # a socket inside a namespace, for in-process clients

Agents and steps started through the harness get ``AGENT_VIRTUAL_NICS=1``: the hosts' NICs are veths, which
the real agent's outgoing-NIC rule (physical, bond or VLAN) would skip. The service is started with
``extra=["--enable-virtual-interfaces"]`` for the same reason (ENABLE_VIRTUAL_INTERFACES of the real one).
Namespaces are named ``anet-<pid>-<n>-hub`` / ``-h<i>``: the pid is how the sweep tells leftovers of dead runs
from networks of concurrent ones.

``Host.nics`` describes each NIC (name, mac, ipv4 "a.b.c.d/nn", ipv6, mtu); ``Host.ipv4``/``ipv6``/``mac`` are
those of its first NIC. Use ``host.run(["ip", ...])`` for anything unusual: it all happens inside the host's
own namespace.

This machine's kernel has neither 802.1Q VLANs nor tc netem (CONFIG_VLAN_8021Q and CONFIG_NET_SCH_NETEM are
off), so there is no VLAN option and packet loss is made with iptables' ``statistic`` match (deterministic:
an exact share of packets is dropped, which also keeps tests free of chance). Delay cannot be emulated here.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "anet"
BRIDGE = "anetbr0"
SUBNET4 = ipaddress.IPv4Network("10.201.0.0/24")
SUBNET6 = ipaddress.IPv6Network("fd42:201::/64")
#: Every command the harness runs gets this long at most.
COMMAND_TIMEOUT = 20.0
#: Agents inside test hosts treat veth NICs as their outgoing NICs (see steps.connectivity_check).
AGENT_ENV = {"AGENT_VIRTUAL_NICS": "1"}

_STALE = re.compile(rf"^{PREFIX}-(\d+)-")
T = TypeVar("T")
_live: set[Network] = set()
_live_lock = threading.Lock()
_counter = 0


def _ip(*args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete ``anet-<pid>-*`` namespaces whose creating process is gone (a killed test run's leftovers).

    Namespaces of live processes are left alone, so concurrent runs (tests and benchmarks) never hit each
    other. Deleting a namespace removes its bridge and veths with it.
    """
    removed = []
    listing = _ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _STALE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
            removed.append(name)
    return removed


class Namespace:
    """A named network namespace: run commands inside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *[str(a) for a in argv]]

    def run(self, argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, check: bool = False,
            input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, input=input,
                              env=full_env)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(map(str, argv))} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        return proc

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
        """A long-running process in the namespace, in its own session so it can be killed as a group."""
        return subprocess.Popen(self.argv(argv), env={**os.environ, **(env or {})}, text=True,
                                start_new_session=True, **kw)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _ip("-n", self.name, *args, check=check)


@dataclass
class Nic:
    """What a test host's NIC should look like; None fields are chosen by the harness."""

    ipv4: str | None = None
    ipv6: str | None = None
    mtu: int = 1500
    mac: str | None = None


@dataclass
class NicInfo:
    name: str
    mac: str
    mtu: int
    ipv4: str | None
    ipv6: str | None
    #: The hub-side veth carrying this NIC's traffic (what cut acts on).
    hub_port: str


@dataclass
class Host(Namespace):
    name: str
    index: int
    network: Network
    nics: list[NicInfo] = field(default_factory=list)

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def ipv4(self) -> str:
        addr = self.nics[0].ipv4
        assert addr, f"{self.name} has no IPv4 address"
        return addr.split("/")[0]

    @property
    def ipv6(self) -> str:
        addr = self.nics[0].ipv6
        assert addr, f"{self.name} has no IPv6 address"
        return addr.split("/")[0]

    @property
    def mac(self) -> str:
        return self.nics[0].mac

    def nic(self, name: str) -> NicInfo:
        return next(n for n in self.nics if n.name == name)

    def _port(self, nic: str | None) -> str:
        return self.nics[0].hub_port if nic is None else self.nic(nic).hub_port

    def set_loss(self, percent: int) -> None:
        """Drop exactly ``percent`` % of the IP packets this host sends (3 of every 10 for 30).

        One iptables ``statistic --mode nth`` rule per dropped packet of ten, each counting only the packets
        the previous rules let through: rule k drops one in (10 - k), which adds up to an exact share.
        """
        if percent % 10 or not 0 <= percent <= 100:
            raise ValueError("loss is set in steps of 10 %")
        self.clear_loss()
        for k in range(percent // 10):
            for tool in ("iptables", "ip6tables"):
                self.run([tool, "-w", "5", "-A", "OUTPUT", "-m", "statistic", "--mode", "nth", "--every",
                          str(10 - k), "--packet", "0", "-j", "DROP"], check=True)

    def clear_loss(self) -> None:
        for tool in ("iptables", "ip6tables"):
            self.run([tool, "-w", "5", "-F", "OUTPUT"], check=True)

    def cut(self, nic: str | None = None) -> None:
        """Take the hub side of the link down: the host is cut off, yet its own NIC still looks up."""
        self.network.hub.ip("link", "set", self._port(nic), "down")

    def restore(self, nic: str | None = None) -> None:
        self.network.hub.ip("link", "set", self._port(nic), "up")

    def set_resolv_conf(self, text: str) -> None:
        """This host's /etc/resolv.conf (``ip netns exec`` bind-mounts /etc/netns/<ns>/resolv.conf over it)."""
        folder = Path("/etc/netns") / self.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text(text)

    def step(self, step_type: str, args: Sequence[str], *, timeout: float = 120,
             env: dict[str, str] | None = None) -> dict[str, Any]:
        """Run one step through the real runner (``agent step --wire``) inside this host; the wire reply."""
        agent = str(Path(sys.executable).parent / "agent")
        proc = self.run([agent, "step", step_type, json.dumps(list(args)), "--wire"], timeout=timeout,
                        env={**AGENT_ENV, **(env or {})})
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise AssertionError(f"agent step {step_type} printed no reply (rc {proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return json.loads(lines[-1])  # type: ignore[no-any-return]

    def start_agent(self, service_url: str, infra_env_id: str, **kw: Any) -> Any:
        """A real agent daemon in this host (tests.support.service.start_agent), veth NICs enabled."""
        from tests.support.service import start_agent

        env = {**AGENT_ENV, **kw.pop("env", {})}
        return start_agent(service_url, infra_env_id, netns=self.name, env=env, **kw)


class Network:
    """The hub, its bridge and the test hosts; a context manager that always removes all of it."""

    def __init__(self, *, tag: str = "") -> None:
        global _counter
        with _live_lock:
            _counter += 1
            serial = _counter
        self.prefix = f"{PREFIX}-{os.getpid()}-{serial}{tag}"
        self.hub = Namespace(f"{self.prefix}-hub")
        self.hub_ipv4 = str(SUBNET4.network_address + 1)
        self.hub_ipv6 = str(SUBNET6.network_address + 1)
        self.hosts: list[Host] = []
        self._next_addr = 10
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------------
    def __enter__(self) -> Network:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        sweep_stale()
        with _live_lock:
            _live.add(self)
        self._started = True
        _ip("netns", "add", self.hub.name)
        self.hub.ip("link", "set", "lo", "up")
        self.hub.ip("link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self.hub.ip("link", "set", BRIDGE, "up")
        self.hub.ip("addr", "add", f"{self.hub_ipv4}/{SUBNET4.prefixlen}", "dev", BRIDGE)
        self.hub.ip("addr", "add", f"{self.hub_ipv6}/{SUBNET6.prefixlen}", "dev", BRIDGE, "nodad")

    def close(self) -> None:
        if not self._started:
            return
        for host in self.hosts:
            _ip("netns", "del", host.name, check=False)
            shutil.rmtree(Path("/etc/netns") / host.name, ignore_errors=True)
        _ip("netns", "del", self.hub.name, check=False)
        self.hosts.clear()
        self._started = False
        with _live_lock:
            _live.discard(self)

    # -- hosts ------------------------------------------------------------------------------------------
    def next_ipv4(self) -> str:
        addr = f"{SUBNET4.network_address + self._next_addr}/{SUBNET4.prefixlen}"
        return addr

    def add_host(self, nics: Sequence[Nic] | None = None, *, ipv6: bool = False,
                 default_route: bool = True) -> Host:
        index = len(self.hosts)
        host = Host(f"{self.prefix}-h{index}", index, self)
        _ip("netns", "add", host.name)
        self.hosts.append(host)
        host.ip("link", "set", "lo", "up")
        for n, spec in enumerate(nics or [Nic()]):
            host.nics.append(self._add_nic(host, n, spec, ipv6))
        if default_route:
            first = host.nics[0]
            if first.ipv4 and ipaddress.IPv4Interface(first.ipv4).network == SUBNET4:
                host.ip("route", "add", "default", "via", self.hub_ipv4)
        return host

    def _add_nic(self, host: Host, n: int, spec: Nic, ipv6: bool) -> NicInfo:
        port = f"{PREFIX}{host.index}n{n}"
        nic = f"eth{n}"
        self.hub.ip("link", "add", port, "type", "veth", "peer", "name", nic, "netns", host.name)
        self.hub.ip("link", "set", port, "mtu", str(max(spec.mtu, 1500)), "master", BRIDGE, "up")
        if spec.mac:
            host.ip("link", "set", nic, "address", spec.mac)
        host.ip("link", "set", nic, "mtu", str(spec.mtu), "up")
        ipv4 = spec.ipv4 if spec.ipv4 is not None else self.next_ipv4()
        suffix = self._next_addr
        host.ip("addr", "add", ipv4, "dev", nic)
        ipv6_addr = spec.ipv6
        if ipv6_addr is None and ipv6:
            ipv6_addr = f"{SUBNET6.network_address + suffix}/{SUBNET6.prefixlen}"
        if ipv6_addr is not None:
            host.ip("addr", "add", ipv6_addr, "dev", nic, "nodad")
        if spec.ipv4 is None:
            self._next_addr += 1
        mac = host.run(["cat", f"/sys/class/net/{nic}/address"], check=True).stdout.strip()
        return NicInfo(nic, mac, spec.mtu, ipv4, ipv6_addr, port)

    # -- processes --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def start_service(self, tmp_path: Path, **kw: Any) -> Iterator[Any]:
        """The reference service inside the hub namespace, listening on the bridge address.

        Agents in the hosts use ``svc.agent_url`` (the bridge address); the test itself, in the root
        namespace, reaches the service through ``svc.url``: a forwarder on 127.0.0.1 whose upstream sockets
        are opened inside the hub namespace, so no address is added to the root namespace.
        """
        from tests.support.service import RefService, start_service

        with start_service(tmp_path, netns=self.hub.name, host=self.hub_ipv4, **kw) as svc:
            port = int(svc.url.rsplit(":", 1)[1])
            with Forwarder(self.hub.name, (self.hub_ipv4, port)) as fwd:
                local = RefService(f"http://127.0.0.1:{fwd.port}", svc.proc, svc.db, svc.log, "test-admin-token")
                local.agent_url = svc.url  # type: ignore[attr-defined]
                yield local


    @contextlib.contextmanager
    def start_dns(self, records: Sequence[str], workdir: Path) -> Iterator[subprocess.Popen[str]]:
        """dnsmasq in the hub on the bridge address, the nameserver of every host added so far.

        ``records`` are dnsmasq options (``--host-record=...``, ``--cname=...``, ``--address=/zone/ip`` for a
        wildcard, ``--local=/zone/`` to answer NXDOMAIN for unknown names of a zone). No upstream is asked.
        """
        proc = self.hub.popen([
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--bind-interfaces", f"--listen-address={self.hub_ipv4}", "--user=root",
            f"--pid-file={workdir / 'dnsmasq.pid'}", *records,
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for host in self.hosts:
                if not (Path("/etc/netns") / host.name / "resolv.conf").exists():
                    host.set_resolv_conf(f"nameserver {self.hub_ipv4}\noptions timeout:1 attempts:2\n")
            probe = f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); " \
                    f"s.settimeout(0.3); s.sendto(bytes.fromhex('{_PROBE_QUERY}'), ('{self.hub_ipv4}', 53)); " \
                    f"s.recv(512)"
            for _ in range(50):
                if proc.poll() is not None:
                    raise RuntimeError(f"dnsmasq exited with {proc.returncode}")
                if self.hub.run([sys.executable, "-c", probe]).returncode == 0:
                    break
            else:
                raise RuntimeError("dnsmasq did not answer within 15 s")
            yield proc
        finally:
            from tests.support.service import stop_process

            stop_process(proc)  # type: ignore[arg-type]


#: A DNS query for "a." (type A), to see whether a server answers at all.
_PROBE_QUERY = "123401000001000000000000016100" + "00010001"
CLONE_NEWNET = 0x40000000


def socket_in(netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket of the named namespace. setns() moves only the calling thread, so a throwaway thread does it;
    a socket keeps the namespace it was created in, whichever thread uses it later."""
    result: list[socket.socket | BaseException] = []

    def create() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}") as fh:
                if libc.setns(fh.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
            result.append(socket.socket(family, kind))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    worker.join(COMMAND_TIMEOUT)
    if not result:
        raise TimeoutError(f"creating a socket in {netns} did not finish")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def run_in(netns: str, fn: Callable[[], T], *, timeout: float = 60.0) -> T:
    """``fn()`` in a thread moved into the named namespace, for in-process code that makes its own sockets
    (probes, sweeps). Only sockets move: /sys and /proc/net stay this namespace's, so code that reads them
    must run as a process (``Namespace.run``)."""
    result: list[Any] = []

    def call() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}") as fh:
                if libc.setns(fh.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
            result.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread
            result.append((False, exc))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        raise TimeoutError(f"{fn!r} in {netns} did not finish in {timeout} s")
    ok, value = result[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Forwarder:
    """TCP from 127.0.0.1:<port> in this namespace to ``target`` inside ``netns``; threads pump both ways."""

    def __init__(self, netns: str, target: tuple[str, int]) -> None:
        self.netns = netns
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._closed = False

    def __enter__(self) -> Forwarder:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket_in(self.netns)
                upstream.settimeout(COMMAND_TIMEOUT)
                upstream.connect(self.target)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                self._open.discard(sock)


def _close_all() -> None:
    with _live_lock:
        nets = list(_live)
    for net in nets:
        with contextlib.suppress(Exception):
            net.close()


atexit.register(_close_all)
