"""The console's forms: a host's role, hostname and installation disk; a cluster's networks and VIPs; Install.

Each form only says what a person changed; the handler turns it into the body the API takes and calls the same
function the API's route calls (``http.changes``), so a form can do nothing the API would refuse, and a refusal
comes back with the API's reason on the page the form was on (400, 404, 409 kept as the status).

Against cross-site requests, on top of ``BrowserGuard`` (another Origin or ``Sec-Fetch-Site`` is refused) and
the session cookie's ``SameSite=Strict``: a form is taken only as ``application/x-www-form-urlencoded`` and with
the page's form token, an HMAC of the admin token that another site cannot read (nor compute).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from common.errors import ServiceRefusal
from reference_service.http import changes, console
from reference_service.http.auth import Auth
from reference_service.http.common import service_of
from reference_service.http.routing import route
from reference_service.pages import summaries

#: Bytes of a form's body that are read: a few names, addresses and ids.
MAX_FORM = 8192
FORM_TYPE = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields, once the request is known to come from one of this service's pages."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != FORM_TYPE:
        raise ServiceRefusal(415, f"the console's forms are posted as {FORM_TYPE}, not {ctype or '(none)'!r}")
    console.same_origin(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    given = form.get("form_token", "").encode()
    if not secrets.compare_digest(given, console.form_token(service_of(request)).encode()):
        raise ServiceRefusal(403, "this form did not come from one of this service's pages (no valid form token)")
    return form


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", " ").split() if part.strip()]


def _host_changes(host: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The ``host-update-params`` of what the form changed."""
    body: dict[str, Any] = {}
    role = form.get("role")
    if role and role != (host.get("role") or "auto-assign"):
        body["host_role"] = role
    name = form.get("hostname", "").strip()
    if name and name != summaries.host_name(host):
        body["host_name"] = name
    disk = form.get("disk", "")
    if disk and disk != host.get("installation_disk_id"):
        body["disks_selected_config"] = [{"id": disk, "role": "install"}]
    return body


async def host_settings(request: Request) -> Response:
    form = await read_form(request)
    svc = service_of(request)
    ie, hid = request.path_params["infra_env_id"], request.path_params["host_id"]
    host = svc.require_host(ie, hid)
    page = f"/infra-envs/{ie}/hosts/{hid}"
    if form.get("from") == "cluster" and host.get("cluster_id"):
        page = f"/clusters/{host['cluster_id']}"
    query = form.get("next", "")  # the page's own query (which page of hosts, of events)
    target = page + (query if query.startswith("?") and "\n" not in query and "\r" not in query else "")
    body = _host_changes(host, form)
    try:
        if body:
            changes.update_host(svc, ie, hid, body)
    except ServiceRefusal as refusal:
        if refusal.status == 404:
            raise
        return _refused(request, page, f"{console.host_label(host)}: {refusal.reason}", refusal.status)
    return RedirectResponse(target, status_code=303)


def _network_changes(cluster: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The ``v2-cluster-update-params`` of what the form changed; a field left as it was is not sent."""
    body: dict[str, Any] = {}
    for field, key, entry in (("machine_network", "machine_networks", "cidr"), ("api_vip", "api_vips", "ip"),
                              ("ingress_vip", "ingress_vips", "ip"), ("service_network", "service_networks", "cidr")):
        if field not in form:
            continue
        given = _listed(form[field])
        if given != console.entries(cluster, key, entry):
            body[key] = [{entry: value} for value in given]
    if "cluster_network" in form:
        given = _listed(form["cluster_network"])
        prefix_text = form.get("host_prefix", "").strip()
        current = cluster.get("cluster_networks") or []
        old_prefix = str((current[0] if current and isinstance(current[0], dict) else {}).get("host_prefix", ""))
        if given != console.entries(cluster, "cluster_networks", "cidr") or prefix_text != old_prefix:
            if not prefix_text.isdigit():
                raise ServiceRefusal(400, f"host prefix {prefix_text!r} is not a number")
            body["cluster_networks"] = [{"cidr": cidr, "host_prefix": int(prefix_text)} for cidr in given]
    return body


async def cluster_networks(request: Request) -> Response:
    form = await read_form(request)
    svc = service_of(request)
    cid = request.path_params["cluster_id"]
    cluster = svc.store.get_cluster(cid)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cid} not found")
    page = f"/clusters/{cid}"
    try:
        body = _network_changes(cluster, form)
        if body:
            changes.update_cluster(svc, cid, body)
    except ServiceRefusal as refusal:
        if refusal.status == 404:
            raise
        return _refused(request, page, f"Networks not changed: {refusal.reason}", refusal.status)
    return RedirectResponse(page, status_code=303)


async def install_button(request: Request) -> Response:
    """The install button: the same call, and so the same checks, as ``POST .../actions/install``."""
    await read_form(request)
    cid = request.path_params["cluster_id"]
    try:
        await changes.install_cluster(service_of(request), cid)
    except ServiceRefusal as refusal:
        if refusal.status == 404:
            raise
        return _refused(request, f"/clusters/{cid}", refusal.reason, refusal.status)
    return RedirectResponse(f"/clusters/{cid}", status_code=303)


def _refused(request: Request, page: str, reason: str, status: int) -> Response:
    """The page the form was on, with the reason, and the status the API would have answered."""
    if page.startswith("/clusters/"):
        cid = page.rsplit("/", 1)[1]
        return console.live_page(request, "cluster.html", console.cluster_context(request, cid, flash=reason),
                                 status=status, src=page)
    ie, hid = page.split("/")[2], page.split("/")[4]
    return console.live_page(request, "host.html", console.host_context(request, ie, hid, flash=reason),
                             status=status, src=page)


ROUTES = [
    route("/clusters/{cluster_id}/install", install_button, methods=["POST"], auth=Auth.ADMIN, max_body=MAX_FORM),
    route("/clusters/{cluster_id}/networks", cluster_networks, methods=["POST"], auth=Auth.ADMIN, max_body=MAX_FORM),
    route("/infra-envs/{infra_env_id}/hosts/{host_id}/settings", host_settings, methods=["POST"], auth=Auth.ADMIN,
          max_body=MAX_FORM),
]
