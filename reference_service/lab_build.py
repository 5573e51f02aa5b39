"""The lab's builds: the agent image (``container/build.sh``), the discovery ISO (``container/iso/build-iso.sh``)
and the OS image installs write (``container/os-image/build-os-image.sh``), each made once and cached.

Why here, and why before anything else: all three debootstrap Debian from Debian's mirror (and pip may fetch
wheels), so they must run in the host's network namespace, which has a route out. ``reference_service.lab``
calls :func:`build` in the process the user started, before it makes the lab's namespace, and hands the
built paths to the run inside it (``--iso``, ``--os-image``): the lab's namespace has no way out, and a build
started in it fails at the first fetch (a CI run's "Failed getting release file", which a machine with a warm
``.image-cache`` never showed).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import AgentError
from reference_service.lab_run import LAB_IMAGE

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = "localhost/assisted-agent:latest"
#: Each build from an empty cache: debootstrap and the packages over the Internet, squashfs, zstd (15-25 min
#: here from a clean clone; far more on a loaded machine).
BUILD_TIMEOUT = 3600


@dataclass(frozen=True)
class Built:
    iso: Path
    os_image: Path
    seconds: float


def build(ns: argparse.Namespace, say: Callable[[str], None]) -> Built:
    """What the lab's run needs, built (or found in the caches) in this process's network namespace."""
    started = time.monotonic()
    agent_image(ns.agent_image, say)
    iso = Path(ns.iso) if ns.iso else discovery_iso(ns.agent_image, ns.pull, say)
    os_image = Path(ns.os_image) if ns.os_image else lab_os_image(say)
    return Built(iso.resolve(), os_image.resolve(), round(time.monotonic() - started, 1))


def agent_image(image: str, say: Callable[[str], None]) -> None:
    """The agent image in podman's store: the lab pushes it to its registry and the ISO carries it."""
    if subprocess.run(["podman", "image", "exists", image], timeout=120).returncode == 0:
        return
    if image != DEFAULT_IMAGE:
        raise AgentError(f"--agent-image {image} is not in podman's store", code="lab-build-failed",
                         hint=f"build or pull it first, or leave --agent-image out ({DEFAULT_IMAGE} is built)")
    say("building the agent image (container/build.sh)")
    _script(ROOT / "container" / "build.sh", [], stdout=subprocess.DEVNULL)


def discovery_iso(image: str, pull: bool, say: Callable[[str], None]) -> Path:
    """The discovery ISO; unless hosts are to pull the agent image, it carries the image under the lab's name."""
    say("building the discovery ISO (container/iso/build-iso.sh; once per agent image)")
    return _script(ROOT / "container" / "iso" / "build-iso.sh", [] if pull else ["--preload", f"{image}={LAB_IMAGE}"])


def lab_os_image(say: Callable[[str], None]) -> Path:
    """The lab's OS image, built once per container/os-image/ (cached in .image-cache/os-image)."""
    say("building the lab's OS image (container/os-image/build-os-image.sh; once)")
    return _script(ROOT / "container" / "os-image" / "build-os-image.sh", [])


def _script(script: Path, args: list[str], stdout: int = subprocess.PIPE) -> Path:
    """Runs a build script (its log on our stderr) and returns the path it printed last."""
    if not script.exists():
        raise AgentError(f"no {script.relative_to(ROOT)} beside this program", code="lab-build-failed",
                         hint="run the lab from a clone of the project, or give --iso and --os-image")
    try:
        out = subprocess.run(["bash", str(script), *args], check=True, timeout=BUILD_TIMEOUT, stdout=stdout,
                             text=True)
    except subprocess.CalledProcessError as exc:
        raise AgentError(f"{script.relative_to(ROOT)} failed (exit status {exc.returncode})", code="lab-build-failed",
                         hint="its log is above; a fetch from Debian's mirror needs this machine's way out") from exc
    except subprocess.TimeoutExpired as exc:
        raise AgentError(f"{script.relative_to(ROOT)} took over {BUILD_TIMEOUT} s", code="lab-build-failed",
                         hint="its log is above") from exc
    return Path(out.stdout.strip().splitlines()[-1]) if out.stdout else Path()
