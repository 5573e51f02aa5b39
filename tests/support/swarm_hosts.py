"""Swarm hosts for tests that drive the user API: real registrations, polls and replies over HTTP."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.support.service import BIN, RefService

#: The swarm's own --duration: only a backstop should the test's process die without running ``finally`` (the
#: block ends the swarm itself). It outlasts any block's waits added up: a lifetime that a block's waits could
#: exceed under load let its hosts vanish mid-test (the clients' session waits up to 270 s in one block).
LIFETIME = 900.0


@contextlib.contextmanager
def swarm_hosts(svc: RefService, infra_env_id: str, hosts: int) -> Iterator[None]:
    """``hosts`` simulated hosts answering every step (installation included) until the block ends, whatever
    happened in it."""
    proc = subprocess.Popen(
        [str(BIN / "assisted-reference-service"), "swarm", "--url", svc.url, "--hosts", str(hosts),
         "--infra-env-id", infra_env_id, "--token", svc.token(infra_env_id), "--interval", "0.5",
         "--duration", str(LIFETIME)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def until(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """``probe()`` once it is true, polled twice a second; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout} s; last: {last}")
