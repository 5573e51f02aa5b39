"""The lab's install: from ``known`` to ``installed`` on the machines' own disks (``lab --until installed``).

The lab's service serves the lab's OS image (``container/os-image/build-os-image.sh``: Debian on a raw GPT disk,
zstd; built once and cached like the ISO) as its ``--os-image``. Once every host is known, the lab starts the
installation through the API as a user does (``actions/install``); the service then hands each host
``write-image`` (the image, with every safety check, and the host's Ignition on its ``boot`` partition) and the
``reboot`` step; QEMU's boot order (the disk first, the ISO second) boots the written disk, whose first boot
applies the Ignition and reports the host ``Joined`` then ``Done`` as the real cluster's controller does; the
host and the cluster are ``installed``. Phases: ``preparing`` (install to installing), ``write`` (to the host's
``Rebooting``), ``installed`` (the reboot, the disk's boot and its report).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference_service.lab_run import Lab

#: Host validations a lab's small virtual machines fail by design (an OpenShift role's cores and memory):
#: ignored through the cluster's ignored-validations, as users of the real service do with such labs.
HARDWARE_VALIDATIONS = ("has-min-cpu-cores", "has-min-memory", "has-cpu-cores-for-role", "has-memory-for-role")
#: What the installed system prints on its console once its report is in (container/os-image/assisted-firstboot).
REPORTED = "assisted-firstboot: reported Done"


def booted_installed_disk(machines: list[Any], deadline: float, pause: float = 1.0) -> list[bool]:
    """Whether each machine's console shows its installed system's report. The service marks the host installed
    when the report arrives, but the guest prints the line only once the answer is back: read at once, the
    console could still lack it (seen in a CI-like run: "reported Joined", then installed, line not yet there)."""
    while True:
        seen = [REPORTED in m.console_text() for m in machines]
        if all(seen) or time.monotonic() >= deadline:
            return seen
        time.sleep(pause)


def ignore_validations(lab: Lab, ids: list[str]) -> None:
    """The cluster's ignored host validations (v2SetIgnoredValidations), before any host is judged."""
    if not ids:
        return
    lab.api("PUT", f"/v2/clusters/{lab.cluster_id}/ignored-validations",
            json={"host-validation-ids": json.dumps(ids), "cluster-validation-ids": "[]"})
    lab.say(f"ignored host validations (small virtual machines): {', '.join(ids)}")


def install(lab: Lab, deadline: float) -> bool:
    """Start the installation once the cluster is ready, then follow hosts and cluster to ``installed``."""
    cluster = lab.cluster_id
    while lab.api("GET", f"/v2/clusters/{cluster}")["status"] != "ready":
        if time.monotonic() > deadline:
            lab.say(f"the cluster never became ready: {lab.api('GET', f'/v2/clusters/{cluster}')['status_info']}")
            return False
        time.sleep(2)
    lab.api("POST", f"/v2/clusters/{cluster}/actions/install")
    lab.say("installation started (actions/install)")
    marks = {"installing": "preparing", "Rebooting": "write", "installed": "installed"}
    seen: dict[str, str] = {}
    reached: set[str] = set()
    while time.monotonic() < deadline:
        lab.check_machines()
        hosts = lab.api("GET", f"/v2/infra-envs/{lab.infra_env_id}/hosts")
        state = lab.api("GET", f"/v2/clusters/{cluster}")
        for h in hosts:
            stage = (h.get("progress") or {}).get("current_stage", "")
            now = f"{h['status']} {stage}".strip()
            if seen.get(h["id"]) != now:
                seen[h["id"]] = now
                lab.say(f"host {h.get('requested_hostname') or h['id']}: {now} ({h.get('status_info', '')})")
            if h["status"] == "error":
                lab.report["hosts"] = hosts
                return False
        lab.report["hosts"], lab.report["cluster_status"] = hosts, state["status"]
        for key, phase in marks.items():
            if phase in reached:
                continue
            if _all_reached(key, hosts, state):
                reached.add(phase)
                lab.phase(phase)
        if "installed" in reached:
            lab.report["booted_installed_disk"] = booted_installed_disk(lab.machines, time.monotonic() + 60)
            lab.save()
            return True
        time.sleep(3)
    lab.say(f"timed out installing; hosts: {seen}")
    lab.save()
    return False


def _all_reached(key: str, hosts: list[dict[str, Any]], cluster: dict[str, Any]) -> bool:
    """Every host past ``key`` (a status, or the stage ``Rebooting``); ``installed`` also wants the cluster's."""
    if not hosts:
        return False
    if key == "installing":
        return all(h["status"] in ("installing", "installing-in-progress", "installed") for h in hosts)
    if key == "Rebooting":
        return all((h.get("progress") or {}).get("current_stage") in ("Rebooting", "Joined", "Done")
                   or h["status"] == "installed" for h in hosts)
    return cluster["status"] == "installed" and all(h["status"] == "installed" for h in hosts)
