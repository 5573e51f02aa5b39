"""The installation rules: stage lists and progress, the native install steps, the host's Ignition.

A host the orchestrator moved to ``installing`` is sent ``write-image`` (the OS image this service serves, its
Ignition endpoint, the installation disk), and once that succeeded ``reboot``. Progress reports follow the
real service's rules (``UpdateInstallProgress``): the stage must belong to the host's role list and may not go
backwards (409 otherwise), the same stage only updates its info, ``Failed`` puts the host in ``error``,
``Done`` makes it ``installed`` -- and so does ``Rebooting`` when the service runs with ``--dry-run-install``,
since no cluster will come up to report ``Done`` (its progress then says ``Done``, 100 %, as an installed host's
does on the real service). Hosts in ``error``/``cancelled`` get ``logs-gather`` and
``stop-installation``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from common.errors import ServiceRefusal
from rules.documents import HostView, disk_key, is_sno, parse_json_field, skipped_formatting
from rules.registry import reply_handler, step_arguments

#: Where the service serves the OS image (see reference_service/os_image.py).
OS_IMAGE_PATH = "/api/reference/os-image"
#: Seconds after which a write-image that never answered is handed out again.
WRITE_IMAGE_REISSUE = 3900.0

_BOOTSTRAP = ["Starting installation", "Installing", "Writing image to disk", "Copying registry data to disk",
              "Waiting for control plane", "Waiting for bootkube", "Waiting for controller", "Rebooting",
              "Configuring", "Joined", "Done"]
_MASTER = ["Starting installation", "Installing", "Writing image to disk", "Copying registry data to disk",
           "Rebooting", "Configuring", "Joined", "Done"]
_WORKER = ["Starting installation", "Installing", "Writing image to disk", "Waiting for control plane",
           "Rebooting", "Waiting for ignition", "Configuring", "Joined", "Done"]
_SNO = ["Starting installation", "Installing", "Waiting for bootkube", "Writing image to disk",
        "Copying registry data to disk", "Rebooting", "Joined", "Done"]
INSTALLING_STATES = ("installing", "installing-in-progress", "installing-pending-user-action")
IGNITION_CLUSTER_STATES = ("installing", "finalizing", "installed", "error", "adding-hosts", "cancelled",
                           "installing-pending-user-action")


def stages_for(host: dict[str, Any], cluster: dict[str, Any] | None) -> list[str]:
    """The stage list of the host's role, as the real service's ``FindMatchingStages``."""
    if host.get("bootstrap"):
        return _SNO if cluster and is_sno(cluster) else _BOOTSTRAP
    if host.get("role") == "worker":
        return _WORKER
    return _MASTER


# -- steps -------------------------------------------------------------------------------------------------------
def format_disk_paths(view: HostView) -> list[str]:
    """disks_to_be_formatted less skip_formatting_disks and the installation disk, as paths for the agent."""
    host = view.host
    skip = set(skipped_formatting(host))
    wanted = [d for d in str(host.get("disks_to_be_formatted") or "").split(",")
              if d and d not in skip and d != host.get("installation_disk_id")]
    disks = {disk_key(d): d for d in (view.inventory or {}).get("disks") or []}
    return [str(disks[d]["path"]) for d in wanted if d in disks and str(disks[d].get("path", "")).startswith("/dev/")]


@step_arguments("write-image")
def write_image_args(view: HostView) -> list[str] | None:
    host = view.host
    if host.get("_image_written"):
        return None
    issued = float(host.get("_write_image_issued_at") or 0)
    if issued and view.now - issued < WRITE_IMAGE_REISSUE:
        return None
    target = host.get("installation_disk_path")
    digest = view.service.os_image_digest() if view.service is not None else None
    if not target or digest is None:
        return None
    request: dict[str, Any] = {
        "image_url": OS_IMAGE_PATH, "target_device": target, "image_sha256": digest,
        "ignition_from_service": True, "infra_env_id": host["infra_env_id"], "host_id": host["id"],
        "role": "bootstrap" if host.get("bootstrap") else view.role,
    }
    disk_id = host.get("installation_disk_id")
    if isinstance(disk_id, str) and disk_id.startswith("/dev/"):
        request["disk_id"] = disk_id
    formats = format_disk_paths(view)
    if formats:
        request["format_disks"] = formats
    host["_write_image_issued_at"] = view.now
    return [json.dumps(request)]


@reply_handler("write-image")
def write_image_done(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    host = view.host
    host.pop("_write_image_issued_at", None)
    if int(reply.get("exit_code") or 0) == 0:
        host["_image_written"] = True
        return
    if host.get("status") in INSTALLING_STATES and view.service is not None:
        view.service.set_status(host, "error", f"Failed - {reply.get('error') or 'writing the image failed'}")


@step_arguments("reboot")
def reboot_args(view: HostView) -> list[str] | None:
    host = view.host
    if not host.get("_image_written") or host.get("_reboot_issued"):
        return None
    host["_reboot_issued"] = True
    return [json.dumps({"delay_seconds": 0, "reason": "Installation completed, server is going to reboot.",
                        "infra_env_id": host["infra_env_id"], "host_id": host["id"]})]


@reply_handler("reboot")
def reboot_done(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    host = view.host
    if int(reply.get("exit_code") or 0) != 0 and host.get("status") in INSTALLING_STATES and view.service:
        view.service.set_status(host, "error", f"Failed - the reboot failed: {reply.get('error', '')}")


@step_arguments("logs-gather")
def logs_gather_args(view: HostView) -> list[str] | None:
    host = view.host
    if not host.get("cluster_id") or host.get("logs_info") in ("completed", "collecting", "timeout"):
        return None
    masters = []
    for other in view.others:
        if other.get("role") == "master":
            masters += view.model.fact(other, "inventory", _ipv4_addresses)
    return [json.dumps({"cluster_id": host["cluster_id"], "infra_env_id": host["infra_env_id"], "host_id": host["id"],
                        "bootstrap": bool(host.get("bootstrap")), "installer_gather": False,
                        "master_ips": masters})]


def _ipv4_addresses(inventory: Any) -> list[str]:
    """The inventory's IPv4 addresses without their prefix, NIC by NIC."""
    return [a.split("/")[0] for nic in (inventory or {}).get("interfaces", []) for a in nic.get("ipv4_addresses", [])]


@step_arguments("stop-installation")
def stop_installation_args(view: HostView) -> list[str]:
    return []


# -- progress --------------------------------------------------------------------------------------------------
@dataclass
class ProgressUpdate:
    """What a progress report does to a host: its new progress, and the stage list, status and event if any."""

    progress: dict[str, Any]
    stages: list[str] | None = None
    status: tuple[str, str] | None = None
    event: str | None = None


def progress_update(host: dict[str, Any], cluster: dict[str, Any] | None, stage: str, info: str, *,
                    dry_run: bool, now: str) -> ProgressUpdate | None:
    """``UpdateInstallProgress`` of the real service, rule for rule: None when nothing changes; raises
    ServiceRefusal on 400/409."""
    if not host.get("cluster_id"):
        raise ServiceRefusal(400, f"Host {host['id']} is not bound to any cluster")
    progress = dict(host.get("progress") or {})
    done = (host.get("status"), progress.get("current_stage")) == ("installed", "Done")
    if dry_run and stage == "Rebooting" and done:
        return None  # the dry run's last report again (a retried PUT): it made the host installed already
    if progress.get("current_stage") == stage:
        if progress.get("progress_info", "") == info:
            return None
        progress["progress_info"], progress["stage_updated_at"] = info, now
        return ProgressUpdate(progress)
    if host.get("status") not in INSTALLING_STATES:
        raise ServiceRefusal(409, f"Can't set progress <{stage}> to host in status <{host.get('status')}>")
    stages = stages_for(host, cluster)
    if stage == "Failed":
        progress.update(current_stage=stage, progress_info=info, stage_started_at=now, stage_updated_at=now)
        return ProgressUpdate(progress, status=("error", f"Failed - {info}" if info else "Failed"))
    current = progress.get("current_stage")
    if stage not in stages:
        raise ServiceRefusal(409, f"Stages list doesn't contain stage {stage} for host {host['id']} "
                                  f"with role {host.get('role')}")
    if current in stages and stages.index(stage) < stages.index(current):
        raise ServiceRefusal(409, f"Can't assign lower stage \"{stage}\" after host has been in stage \"{current}\"")
    progress.update(current_stage=stage, progress_info=info, stage_started_at=now, stage_updated_at=now,
                    installation_percentage=int((stages.index(stage) + 1) * 100 / len(stages)))
    day2 = host.get("kind") == "AddToExistingClusterHost"
    if day2 and stage in ("Done", "Rebooting"):  # no controller reports Done for a day-2 host
        status = ("added-to-existing-cluster", "Host has rebooted and no further updates will be posted")
    elif stage == "Done" or (stage == "Rebooting" and dry_run):
        status = ("installed", "Done")
        # an installed host's progress is the real service's last stage, also where a dry run stopped reporting
        progress.update(current_stage="Done", installation_percentage=100)
    else:
        status = ("installing-in-progress", stage)
    return ProgressUpdate(progress, stages, status,
                          f"Host {host['id']}: reached installation stage {stage}{': ' + info if info else ''}")


def host_ignition(host: dict[str, Any], cluster: dict[str, Any], role: str, *, service_url: str = "",
                  token: str = "") -> bytes:
    """A placeholder Ignition v3.2 config naming the host (the real one comes from the OpenShift installer).

    With ``service_url`` it also carries what the installed system needs to report its first boot
    (``/etc/assisted/controller.env``, mode 0600: the service's URL, the ids and the agent ``token`` when the
    service wants one), as the real cluster's assisted-installer-controller gets them from its config map and
    secret to report the hosts ``Done``; the lab's OS image reads it (container/os-image/assisted-firstboot)."""
    hostname = host.get("requested_hostname") or (parse_json_field(host, "inventory") or {}).get(
        "hostname", "")
    files = [{"path": "/etc/assisted/host", "mode": 0o644, "overwrite": True,
              "contents": {"source": "data:," + f"{host['id']}%20{role}%20{cluster['id']}"}}]
    if hostname:
        files.append({"path": "/etc/hostname", "mode": 0o644, "overwrite": True,
                      "contents": {"source": f"data:,{hostname}"}})
    if service_url:
        settings = {"INVENTORY_URL": service_url, "CLUSTER_ID": cluster["id"], "INFRA_ENV_ID": host["infra_env_id"],
                    "HOST_ID": host["id"], "PULL_SECRET_TOKEN": token}
        env = "".join(f"{key}='{value}'\n" for key, value in settings.items() if "'" not in value)
        files.append({"path": "/etc/assisted/controller.env", "mode": 0o600, "overwrite": True,
                      "contents": {"source": "data:;base64," + base64.b64encode(env.encode()).decode()}})
    doc = {"ignition": {"version": "3.2.0"}, "storage": {"files": files}}
    return json.dumps(doc, separators=(",", ":")).encode()
