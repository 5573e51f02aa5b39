"""The pre-install checks: NTP, installation-disk speed and container images.

As the real service (assisted-service-api.md 4.2-5.4): ``ntp-synchronizer`` goes to every host with the
cluster's ``additional_ntp_source`` (the infra-env's ``additional_ntp_sources`` for unbound hosts);
``installation-disk-speed-check`` and ``container-image-availability`` go to hosts preparing for installation,
each only while its result is missing. Replies are stored in the host fields the real service uses:
``ntp_sources`` (JSON list of sources), ``disks_info`` (JSON list of ``{path, disk_speed: {tested,
exit_code, speed_ms}}``) and ``images_status`` (JSON object keyed by image name). The three validations use
the real messages. The real service lets ``sufficient-installation-disk-speed`` and
``container-images-available`` pass while nothing was measured; here they are ``pending`` during
preparing-for-installation until the results arrive, because this service moves the host on as soon as
both pass instead of waiting for a monitor timeout.

Images checked: the cluster's ``ocp_release_image`` plus ``REFERENCE_SERVICE_PREINSTALL_IMAGES`` (a
comma-separated list read when the hook runs; the real service derives MCO, must-gather and installer
images from the release, which a reference service cannot resolve).
"""

from __future__ import annotations

import json
from typing import Any

from rules.documents import HostView, Outcome, parse_json_field
from rules.registry import reply_handler, step_arguments, validation

#: DISK_CHECK_TIMEOUT of the real service (8 minutes), sent as "%.2f".
DISK_CHECK_TIMEOUT = 480.0
IMAGE_PULL_TIMEOUT = 960
#: io_sync_duration above this only produces a warning event, as in the real service.
DISK_SPEED_THRESHOLD_MS = 10
#: download_rate (MB/s) below this, for an image that was downloaded, counts as a failure.
DOWNLOAD_RATE_THRESHOLD = 0.001
PREPARING = "preparing-for-installation"

NTP_SYNCED = "Host NTP is synced"
NTP_NOT_SYNCED = "Host couldn't synchronize with any NTP server"
DISK_NOT_MEASURED = "Speed of installation disk has not yet been measured"
DISK_OK = "Speed of installation disk is sufficient"
DISK_FAILED = ("While preparing the previous installation the installation disk speed measurement failed "
               "or was found to be insufficient")
IMAGES_OK = ("All required container images were either pulled successfully or no attempt was made "
             "to pull them")
IMAGES_MISSING = "Missing container images statuses"
IMAGES_FAILED = ("Failed to fetch container images needed for installation from {}. This may be due to a "
                 "network hiccup. Retry to install again. If this problem persists, check your network "
                 "settings to make sure you\u2019re not blocked.")


# -- ntp -----------------------------------------------------------------------------------------------------
@step_arguments("ntp-synchronizer")
def ntp_args(view: HostView) -> list[str]:
    if view.cluster is not None:
        sources = view.cluster.get("additional_ntp_source")
    else:
        sources = view.infra_env.get("additional_ntp_sources")
    return [json.dumps({"ntp_source": sources or ""})]


@reply_handler("ntp-synchronizer")
def ntp_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    if isinstance(output, dict) and int(reply.get("exit_code") or 0) == 0:
        view.host["ntp_sources"] = json.dumps(output.get("ntp_sources") or [])


@validation("ntp-synced", "network", blocking=False, unbound=True)
def ntp_synced(view: HostView) -> Outcome:
    if not view.host.get("ntp_sources"):
        return "failure", NTP_NOT_SYNCED
    sources = parse_json_field(view.host, "ntp_sources")
    if not isinstance(sources, list):
        return "error", "Parse error for NTP sources"
    if any(isinstance(s, dict) and s.get("source_state") == "synced" for s in sources):
        return "success", NTP_SYNCED
    return "failure", NTP_NOT_SYNCED


# -- installation disk speed ---------------------------------------------------------------------------------
def installation_disk(host: dict[str, Any]) -> str | None:
    """The boot device as the real service names it: the disk id (a /dev/disk/by-id or by-path link) if set."""
    disk_id = host.get("installation_disk_id")
    if isinstance(disk_id, str) and disk_id.startswith("/dev/"):
        return disk_id
    path = host.get("installation_disk_path")
    return str(path) if path else None


def disks_info(host: dict[str, Any]) -> list[dict[str, Any]]:
    info = parse_json_field(host, "disks_info")
    return [d for d in info if isinstance(d, dict)] if isinstance(info, list) else []


def disk_speed(host: dict[str, Any], path: str) -> dict[str, Any] | None:
    for disk in disks_info(host):
        speed = disk.get("disk_speed")
        if disk.get("path") == path and isinstance(speed, dict) and speed.get("tested"):
            return speed
    return None


def disk_speed_skipped(view: HostView) -> bool:
    """Hosts the real service never sends the check to (4.2): booted from a persistent disk, or installing
    with ``--save-partindex``/``--save-partlabel`` (the check would write over partitions to be kept)."""
    boot = (view.inventory or {}).get("boot")
    if isinstance(boot, dict) and boot.get("device_type") == "persistent":
        return True
    installer_args = str(view.host.get("installer_args") or "")
    return "--save-partindex" in installer_args or "--save-partlabel" in installer_args


@step_arguments("installation-disk-speed-check")
def disk_speed_args(view: HostView) -> list[str] | None:
    path = installation_disk(view.host)
    if path is None or disk_speed(view.host, path) is not None or disk_speed_skipped(view):
        return None
    return [json.dumps({"path": path}), f"{DISK_CHECK_TIMEOUT:.2f}"]


@reply_handler("installation-disk-speed-check")
def disk_speed_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    exit_code = int(reply.get("exit_code") or 0)
    if not isinstance(output, dict) and exit_code == 0:
        # Empty output, exit 0: the Go agent found a measurement already running. The real service records
        # nothing, so the check is sent again (assisted-service-api.md section 9). A failure without output
        # is still recorded: this service has no preparation timeout to end the wait otherwise.
        return
    result = output if isinstance(output, dict) else {}
    path = result.get("path") or installation_disk(view.host)
    if not path:
        return
    speed_ms = int(result.get("io_sync_duration") or 0)
    disks = [d for d in disks_info(view.host) if d.get("path") != path]
    disks.append({"path": path, "disk_speed": {"tested": True, "exit_code": exit_code, "speed_ms": speed_ms}})
    view.host["disks_info"] = json.dumps(disks)
    if view.service is not None and exit_code == 0 and speed_ms > DISK_SPEED_THRESHOLD_MS:
        view.service.event(
            f"Host {view.host['id']}: the installation disk {path} has a 99th percentile fdatasync latency "
            f"of {speed_ms} ms, above the {DISK_SPEED_THRESHOLD_MS} ms etcd needs; expect an unstable "
            "control plane",
            view.host, "warning",
        )


@validation("sufficient-installation-disk-speed", "hardware")
def sufficient_disk_speed(view: HostView) -> Outcome:
    path = installation_disk(view.host)
    speed = disk_speed(view.host, path) if path else None
    if speed is None:
        if path and view.host.get("status") == PREPARING and not disk_speed_skipped(view):
            return "pending", DISK_NOT_MEASURED
        return "success", DISK_NOT_MEASURED
    if int(speed.get("exit_code") or 0) == 0:
        return "success", DISK_OK
    return "failure", DISK_FAILED


# -- container images ----------------------------------------------------------------------------------------
def required_images(view: HostView) -> list[str]:
    images = []
    if view.cluster and view.cluster.get("ocp_release_image"):
        images.append(str(view.cluster["ocp_release_image"]))
    images += list(view.settings.preinstall_images) if view.settings else []
    return list(dict.fromkeys(images))


def images_status(host: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = parse_json_field(host, "images_status")
    if not isinstance(status, dict):
        return {}
    return {k: v for k, v in status.items() if isinstance(v, dict)}


def image_failed(status: dict[str, Any]) -> bool:
    size = float(status.get("size_bytes") or 0)
    rate = float(status.get("download_rate") or 0)
    return status.get("result") == "failure" or (size > 0 and rate < DOWNLOAD_RATE_THRESHOLD)


@step_arguments("container-image-availability")
def images_args(view: HostView) -> list[str] | None:
    known = images_status(view.host)
    missing = [image for image in required_images(view) if image not in known]
    if not missing:
        return None
    return [json.dumps({"images": missing, "timeout": IMAGE_PULL_TIMEOUT})]


@reply_handler("container-image-availability")
def images_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    if not isinstance(output, dict) or not isinstance(output.get("images"), list):
        return
    status = images_status(view.host)
    for image in output["images"]:
        if isinstance(image, dict) and image.get("name"):
            status[str(image["name"])] = image
    view.host["images_status"] = json.dumps(status)


@validation("container-images-available", "network", blocking=False)
def images_available(view: HostView) -> Outcome:
    raw = view.host.get("images_status")
    if raw and not isinstance(parse_json_field(view.host, "images_status"), dict):
        return "error", "Parse error for container image statuses"
    status = images_status(view.host)
    failed = [name for name, s in status.items() if image_failed(s)]
    if failed:
        return "failure", IMAGES_FAILED.format(",".join(failed))
    if view.host.get("status") == PREPARING and any(i not in status for i in required_images(view)):
        return "pending", IMAGES_MISSING
    return "success", IMAGES_OK


# -- upgrade-agent -------------------------------------------------------------------------------------------
@reply_handler("upgrade-agent")
def upgrade_reply(view: HostView, output: Any, reply: dict[str, Any]) -> None:
    if view.service is None or not isinstance(output, dict):
        return
    image, result = output.get("agent_image", ""), output.get("result", "")
    if result == "success":
        view.service.event(f"Host {view.host['id']}: agent upgraded to {image}; it restarts into it",
                           view.host)
    elif result == "failure":
        view.service.event(f"Host {view.host['id']}: agent upgrade to {image} failed", view.host, "warning")
