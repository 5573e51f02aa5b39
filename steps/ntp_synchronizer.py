"""ntp-synchronizer: make chrony use the cluster's extra NTP sources, then report every source's state.

As the Go agent: each requested source not already known to chronyd (by name, or by any address the name
resolves to) is added with ``chronyc add server <src> iburst``; then ``chronyc`` lists the sources and each
address is turned back into a name by reverse DNS (first PTR, trailing dot trimmed), falling back to the
address. We read the CSV form (``chronyc -c sources``), which has no column layout to guess and never does
reverse lookups itself, so the only name resolution is ours and it is bounded in time.

Environment (read by the step process, so it can be set on the agent's unit or in tests):

``AGENT_CHRONYC_SOCKET``
    Path of chronyd's command socket; chronyc is run as ``chronyc -h <path>``. Unset: chronyc's default
    (``/run/chrony/chronyd.sock``, then UDP 127.0.0.1:323).
``AGENT_CHRONYC_TIMEOUT``
    Seconds each chronyc call may take (default 30, the Go agent's ``timeout 30``). When it is exceeded the
    reply is exit -1 with the Go agent's error, "chronyc was timed out after 30 seconds".
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from common.errors import CommandNotFound, InvalidStepArguments, StepError
from common.host import CommandResult, Host
from steps.base import Step, StepContext, StepResult, expect_args, get_field, json_arg

STEP = "ntp-synchronizer"
DEFAULT_CHRONYC_TIMEOUT = 30.0
#: DNS lookups of all sources together (forward, then reverse) may take this long each; a source not resolved
#: in time is added as given (chronyd resolves it itself) and reported by address.
LOOKUP_BUDGET = 5.0
#: chronyc's state column -> the spec's source_state enum; anything else is "error", as in the Go agent.
STATES = {
    "*": "synced", "+": "combined", "-": "not_combined", "?": "unreachable", "x": "error", "~": "variable",
}
T = TypeVar("T")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class NtpParams:
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ChronySource:
    address: str
    state: str


def valid_source(source: str) -> bool:
    """An IP address or a DNS name, as ValidateNTPSource; never something chronyc could take for an option."""
    try:
        ipaddress.ip_address(source)
        return True
    except ValueError:
        pass
    name = source[:-1] if source.endswith(".") else source
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def chronyc_timeout(setting: float) -> float:
    """The ``chronyc_timeout`` setting (AGENT_CHRONYC_TIMEOUT), or the default when it is not positive."""
    return setting if setting > 0 else DEFAULT_CHRONYC_TIMEOUT


def chronyc_argv(*command: str, socket_path: str = "") -> list[str]:
    """chronyc's command line; ``socket_path`` is the ``chronyc_socket`` setting (AGENT_CHRONYC_SOCKET)."""
    return ["chronyc", *(["-h", socket_path] if socket_path else []), *command]


def parse_sources(csv_text: str) -> list[ChronySource]:
    """Server lines (mode ``^``) of ``chronyc -c sources``: mode,state,address,stratum,poll,reach,..."""
    found = []
    for line in csv_text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[0] == "^":
            found.append(ChronySource(address=fields[2], state=STATES.get(fields[1], "error")))
    return found


def _resolve(name: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_UDP)}
    except (OSError, UnicodeError):
        return set()


def _reverse(address: str) -> str:
    try:
        name = socket.gethostbyaddr(address)[0]
    except (OSError, UnicodeError):
        return address
    return name.rstrip(".") or address


def _bounded(func: Callable[[str], T], keys: list[str], budget: float, default: Callable[[str], T]) -> dict[str, T]:
    """``func`` of every key, all at once in threads, given ``budget`` seconds in total (DNS may hang)."""
    if not keys:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(8, len(keys)), thread_name_prefix="dns")
    futures = {key: pool.submit(func, key) for key in keys}
    wait(futures.values(), timeout=budget)
    pool.shutdown(wait=False, cancel_futures=True)
    return {key: (fut.result() if fut.done() else default(key)) for key, fut in futures.items()}


def reverse_names(addresses: list[str], budget: float) -> dict[str, str]:
    """Address -> first PTR name (trailing dot trimmed), or the address itself when there is none in time."""
    return _bounded(_reverse, addresses, budget, lambda addr: addr)


class NtpSynchronizerStep(Step[NtpParams]):
    step_type = STEP
    default_timeout = 120.0

    def parse_args(self, args: list[str]) -> NtpParams:
        expect_args(STEP, args, 1)
        request = json_arg(STEP, args[0], dict)
        raw = get_field(STEP, request, "ntp_source", str)
        if not raw.strip():
            return NtpParams(())
        sources = tuple(s.strip() for s in raw.split(","))
        bad = [s for s in sources if not valid_source(s)]
        if bad:
            raise InvalidStepArguments(
                f"{STEP}: ntp_source must be a comma-separated list of host names or IP addresses; "
                f"invalid: {', '.join(repr(b) for b in bad)}"
            )
        return NtpParams(tuple(dict.fromkeys(sources)))

    def run(self, params: NtpParams, ctx: StepContext) -> StepResult:
        host = ctx.host
        if host.which("chronyc") is None:
            raise CommandNotFound(
                "chronyc is not installed on this host, so NTP sources cannot be configured or read",
                hint="install chrony (the discovery image ships it) or remove the ntp-synchronizer step",
            )
        timeout = chronyc_timeout(ctx.config.chronyc_timeout)
        self.socket = ctx.config.chronyc_socket
        current = self._sources(host, timeout)
        known = {s.address for s in current}
        names = [s for s in params.sources if s not in known]
        resolved = _bounded(_resolve, names, min(LOOKUP_BUDGET, ctx.remaining()), lambda _: set())
        failures = []
        for source in names:
            if resolved[source] & known:
                continue
            result = self._chronyc(host, timeout, "add", "server", source, "iburst")
            if not result.ok:
                failures.append(f"{chronyc_failed(result)} (adding NTP source {source})")
        if params.sources:
            current = self._sources(host, timeout)
        ptr = reverse_names([s.address for s in current], min(LOOKUP_BUDGET, ctx.remaining()))
        sources = [{"source_name": ptr[s.address], "source_state": s.state} for s in current]
        output = {"ntp_sources": sources}
        return StepResult(output=output, error="; ".join(failures))

    def _sources(self, host: Host, timeout: float) -> list[ChronySource]:
        result = self._chronyc(host, timeout, "-c", "sources")
        if not result.ok:
            raise StepError(chronyc_failed(result))
        return parse_sources(result.stdout)

    def _chronyc(self, host: Host, timeout: float, *command: str) -> CommandResult:
        result = host.run(chronyc_argv(*command, socket_path=self.socket), timeout=timeout)
        if result.timed_out:
            raise StepError(f"chronyc was timed out after {timeout:g} seconds", code="chronyc-timeout")
        return result


def chronyc_failed(result: CommandResult) -> str:
    """The Go agent's words, byte for byte: ``chronyc exited with non-zero exit code %d: <stdout>\n<stderr>``,
    where an empty stderr is replaced by Go's exec error (``exit status 1``). chronyc prints "506 Cannot talk
    to daemon" on stdout, so a stopped chronyd reads ``...code 1: 506 Cannot talk to daemon\n\nexit status 1``."""
    import signal

    code = result.exit_code
    if result.stderr:
        tail = result.stderr
    elif code < 0:
        try:
            tail = f"signal: {signal.strsignal(-code) or -code}".lower()
        except ValueError:
            tail = f"signal: {-code}"
    else:
        tail = f"exit status {code}"
    return f"chronyc exited with non-zero exit code {code}: {result.stdout}\n{tail}"
