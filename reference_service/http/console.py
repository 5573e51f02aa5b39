"""The pages people use: clusters, a cluster, a host; signing in with the admin token; the install button.

Every page is declared ``Auth.ADMIN`` like the API: the admin token as a bearer or the session cookie that
signing in sets. Without one a browser is sent to ``/login`` (``sign_in_redirect``) and the page's script gets
401. A page asked for with ``X-Console-Fragment`` answers with its live part only, and with 304 when the
part's ETag has not changed, so the polling that keeps pages current costs one render and no transfer.
Each page reads a bounded amount: a page of one cluster's hosts, one host's latest replies, a page of events.
The forms on the pages are ``console_forms``'.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from common.errors import ServiceRefusal
from reference_service.http.auth import SESSION_COOKIE, Auth, is_admin, session_value
from reference_service.http.common import service_of
from reference_service.http.routing import route
from reference_service.orchestrator import ReferenceService
from reference_service.pages import summaries, timeline
from reference_service.pages.render import STATIC, render, render_live
from rules.documents import is_sno, parse_json_field
from rules.presentation import cluster_progress
from rules.states import required_hosts
from rules.user_checks import EDITABLE_STATES

#: Rows a page shows of what grows without bound (replies): the newest ones.
HISTORY_ROWS = 60
#: Bytes of a sign-in form body that are read: a token and a path, nothing more.
MAX_FORM = 4096
#: Cluster states before an install: the validations gate the Install button; after, the install is shown.
PRE_INSTALL_CLUSTER = ("insufficient", "ready", "pending-for-input")


def page_context(request: Request, title: str) -> dict[str, Any]:
    settings = service_of(request).settings
    return {"title": title, "auth_on": settings.auth != "none", "signed_in": True,
            "interval": max(1, min(5, int(settings.next_step_seconds or 5))),
            "form_token": form_token(service_of(request)), "q": query_link(request)}


def form_token(svc: ReferenceService) -> str:
    """What every form of the pages carries (``console_forms``): derived from the admin token, which another
    site has not got, and the same for every page, so a page kept open for a day still posts."""
    return hmac.new(svc.settings.admin_token.encode(), b"assisted-console-form", hashlib.sha256).hexdigest()


def query_link(request: Request) -> Callable[..., str]:
    """``q(name=value, ...)``: this page's query with those changed (None drops one), for pagers and filters."""
    def link(**changed: Any) -> str:
        params = {**dict(request.query_params), **{k: str(v) for k, v in changed.items() if v is not None}}
        for key in (k for k, v in changed.items() if v is None):
            params.pop(key, None)
        return "?" + urlencode(params) if params else "?"
    return link


def signed_in(request: Request) -> bool:
    svc = service_of(request)
    return svc.settings.auth == "none" or is_admin(request, svc)


def live_page(request: Request, template: str, context: dict[str, Any], status: int = 200,
              src: str | None = None) -> Response:
    """A page, or its live part; ``src`` is the page's own URL when it answers a form's POST (what the page's
    script asks again)."""
    context = {**context, "src": src or ""}
    fragment = render_live(template, **context)
    etag = '"' + hashlib.sha256(fragment.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"}
    if request.headers.get("x-console-fragment"):
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return HTMLResponse(fragment, headers=headers)
    # the live part made above, not made again (it is most of a page: 0.3 s of 1,000 hosts' cluster page)
    return HTMLResponse(render(template, etag=etag, live_html=Markup(fragment), **context), status_code=status,
                        headers=headers)


def _profile(cluster: dict[str, Any]) -> str:
    if is_sno(cluster):
        return "single node"
    masters = int(cluster.get("control_plane_count") or 3)
    return f"{masters} control plane nodes"


#: Hosts a page lists at once (``?page=N`` for the others): at 10,000 hosts a page of every host was 5.8 MB and
#: took 1.2 s of the event loop, while every agent's poll waited. Rows are made for the page's hosts only.
PAGE_ROWS = 100


def paged(request: Request, docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of the requested page of ``docs`` (registration order) and where it is among the pages."""
    total = len(docs)
    pages = max(1, -(-total // PAGE_ROWS))
    try:
        page = min(max(1, int(request.query_params.get("page", "1"))), pages)
    except ValueError:
        page = 1
    start = (page - 1) * PAGE_ROWS
    rows = [summaries.host_row(h) for h in docs[start:start + PAGE_ROWS]]
    return rows, {"page": page, "pages": pages, "total": total, "first": start + 1 if rows else 0,
                  "last": start + len(rows)}


def _cluster_card(svc: ReferenceService, cluster: dict[str, Any]) -> dict[str, Any]:
    hosts = svc.store.peers(cluster_id=cluster["id"])  # shared documents, only counted
    return {**{k: cluster.get(k, "") for k in ("id", "name", "status", "status_info", "openshift_version",
                                              "base_dns_domain")},
            "tone": summaries.tone(cluster.get("status")), "profile": _profile(cluster), "hosts": len(hosts),
            "known": sum(1 for h in hosts if h.get("status") == "known")}


async def clusters_page(request: Request) -> Response:
    svc = service_of(request)
    clusters = [_cluster_card(svc, c) for c in svc.store.list_clusters()]
    clusters.sort(key=lambda c: str(c["name"]))
    unbound, pager = paged(request, [h for h in svc.store.peers() if not h.get("cluster_id")])
    return live_page(request, "clusters.html", {**page_context(request, "Clusters"), "clusters": clusters,
                                                 "unbound": unbound, "pager": pager})


def cluster_checks(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the install button waits for: every cluster validation, grouped as the real UI groups them (the
    cluster's ``validations_info``); before it has any, the host counts the state machine checks."""
    if parse_json_field(cluster, "validations_info"):
        return summaries.validation_groups(cluster)
    needed = required_hosts(cluster)
    known = sum(1 for h in hosts if h.get("status") == "known")
    items = [
        {"id": "sufficient-masters-count", "status": "success" if len(hosts) >= needed else "failure",
         "message": f"{len(hosts)} host(s) registered, {needed} required for a {_profile(cluster)} cluster"},
        {"id": "all-hosts-are-ready-to-install", "status": "success" if hosts and known == len(hosts) else "failure",
         "message": f"{known} of {len(hosts)} host(s) are known (ready to be installed)"},
    ]
    failing = sum(1 for i in items if i["status"] == "failure")
    return [{"category": "hosts", "items": items, "failing": failing, "pending": 0}]


def entries(cluster: dict[str, Any], key: str, field: str) -> list[str]:
    """The values of a cluster's network or VIP list (``machine_networks``' cidrs, ``api_vips``' ips)."""
    return [str(e.get(field)) for e in cluster.get(key) or [] if isinstance(e, dict) and e.get(field)]


def _networks(cluster: dict[str, Any]) -> dict[str, Any]:
    """The networking section: each network and VIP list, or what sets it when it is missing, and the form's
    values (shown only while the cluster can be changed)."""
    machine, api, ingress = (entries(cluster, k, f) for k, f in (("machine_networks", "cidr"), ("api_vips", "ip"),
                                                               ("ingress_vips", "ip")))
    umn = bool(cluster.get("user_managed_networking")) or is_sno(cluster)
    # the real update path refuses a machine network the user sets on a cluster that makes it from its VIPs
    own_machine = umn or bool(cluster.get("vip_dhcp_allocation")) or \
        (cluster.get("load_balancer") or {}).get("type") == "user-managed"
    facts = [("Machine network", ", ".join(machine) or ("not set: assigned from the hosts' network" if umn else
              "not set: the network of the discovered hosts that holds the API VIP, once the VIPs are set")),
             ("API VIPs", ", ".join(api) or ("not used: user-managed networking" if umn else "none: required")),
             ("Ingress VIPs", ", ".join(ingress) or ("not used: user-managed networking" if umn else "none: required")),
             ("Cluster network", ", ".join(f"{e.get('cidr')} (host prefix /{e.get('host_prefix')})"
                                           for e in cluster.get("cluster_networks") or [] if isinstance(e, dict))
              or "none"),
             ("Service network", ", ".join(entries(cluster, "service_networks", "cidr")) or "none")]
    first = next((e for e in cluster.get("cluster_networks") or [] if isinstance(e, dict)), {})
    form = {"machine_network": ", ".join(machine), "api_vip": ", ".join(api), "ingress_vip": ", ".join(ingress),
            "cluster_network": ", ".join(entries(cluster, "cluster_networks", "cidr")),
            "host_prefix": str(first.get("host_prefix", "")),
            "service_network": ", ".join(entries(cluster, "service_networks", "cidr"))}
    return {"facts": facts, "form": form, "vips": not umn, "machine": own_machine,
            "editable": cluster.get("status") in EDITABLE_STATES}


def _installation(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Once an install started: its progress and where the hosts are, instead of the checks that gated it."""
    if cluster.get("status") in PRE_INSTALL_CLUSTER:
        return None
    by_status: dict[str, int] = {}
    for h in hosts:
        by_status[str(h.get("status"))] = by_status.get(str(h.get("status")), 0) + 1
    return {"percentage": cluster_progress(cluster, hosts)["total_percentage"],
            "started": timeline.readable(cluster.get("install_started_at")),
            "completed": timeline.readable(cluster.get("install_completed_at")) if cluster.get("status") == "installed"
            else "", "hosts": sorted(by_status.items())}


def events_context(request: Request, hosts: dict[str, dict[str, Any]], **where: str) -> dict[str, Any]:
    """A page of the events of a cluster or a host (``where``), newest first, of the severity asked for;
    ``hosts`` by id, of which only the page's are named (a name may need the host's inventory parsed)."""
    svc = service_of(request)
    severity = timeline.severity_of(request.query_params.get("severity"))
    page = timeline.page_number(request.query_params.get("events"))
    pager = timeline.pager(page, severity, svc.store.event_counts(**where))
    rows = svc.store.event_page(**where, severity=severity or None, offset=pager["offset"],
                                limit=timeline.EVENTS_PER_PAGE)
    names = {hid: summaries.host_name(hosts[hid]) for hid in {str(e.get("host_id")) for e in rows} if hid in hosts}
    return {"rows": timeline.event_rows(rows, names, time.time()), "severity": severity, **pager}


def cluster_context(request: Request, cluster_id: str, flash: str = "") -> dict[str, Any]:
    svc = service_of(request)
    cluster = svc.store.get_cluster(cluster_id)
    if cluster is None:
        raise ServiceRefusal(404, f"cluster {cluster_id} not found")
    hosts = svc.store.peers(cluster_id=cluster_id)
    rows, pager = paged(request, hosts)
    installation = _installation(cluster, hosts)
    return {**page_context(request, str(cluster.get("name") or cluster_id)), "cluster": cluster,
            "tone": summaries.tone(cluster.get("status")), "profile": _profile(cluster), "hosts": rows,
            "cluster_checks": cluster_checks(cluster, hosts) if installation is None else [],
            "installation": installation, "flash": flash, "net": _networks(cluster), "pager": pager,
            "ev": events_context(request, {str(h.get("id")): h for h in hosts}, cluster_id=cluster_id),
            "editable_hosts": True}


async def cluster_page(request: Request) -> Response:
    return live_page(request, "cluster.html", cluster_context(request, request.path_params["cluster_id"]))


_HOST_ID = re.compile(r'"host_id"\s*:\s*"([0-9a-fA-F-]{36})"')


def _names(svc: ReferenceService, host: dict[str, Any], replies: list[dict[str, Any]]) -> dict[str, str]:
    """The names of the hosts ``replies`` mention (a connectivity matrix's peers), and of ``host``: only
    theirs, as a name may need an inventory parsed (a thousand of them for one page took 0.3 s)."""
    wanted = {str(host["id"])} | {m for r in replies for m in _HOST_ID.findall(str(r.get("output") or ""))}
    if host.get("cluster_id"):
        others = svc.store.peers(cluster_id=host["cluster_id"])
    else:
        others = svc.store.peers(infra_env_id=host["infra_env_id"])
    return {str(h.get("id")): summaries.host_name(h) for h in others if str(h.get("id")) in wanted}


def host_label(host: dict[str, Any]) -> str:
    return f"Host {summaries.host_name(host)}"


def host_context(request: Request, infra_env_id: str, host_id: str, flash: str = "") -> dict[str, Any]:
    svc = service_of(request)
    host = svc.require_host(infra_env_id, host_id)
    latest = svc.store.latest_replies(host["id"])
    for r in latest:
        r["received_at_iso"] = _iso(r.get("received_at"))
    history = [{"at": _iso(r.get("received_at")), "step_type": r.get("step_type", ""),
                "exit_code": r.get("exit_code"), "error": r.get("error") or ""}
               for r in svc.store.replies(host["id"], last=HISTORY_ROWS)[::-1]]
    cluster = svc.store.get_cluster(host["cluster_id"]) if host.get("cluster_id") else None
    row = summaries.host_row(host)
    names = _names(svc, host, latest)
    installed = host.get("status") in summaries.INSTALLED  # no discovery checks failing
    return {**page_context(request, str(row["name"])), "host": host, "row": row, "cluster": cluster,
            "groups": [] if installed else summaries.validation_groups(host), "installed": installed,
            "inv": summaries.inventory_view(host), "progress": summaries.progress_view(host),
            "steps": summaries.latest_steps(latest, names), "history": history, "flash": flash,
            "ev": events_context(request, {str(host["id"]): host}, host_id=host["id"])}


async def host_page(request: Request) -> Response:
    p = request.path_params
    return live_page(request, "host.html", host_context(request, p["infra_env_id"], p["host_id"]))


def _iso(t: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t)))
    except (TypeError, ValueError):
        return ""


# -- signing in --------------------------------------------------------------------------------------------------
def safe_next(target: str) -> str:
    """Only a path of this service: never another site (``//host``, ``https://...``)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def same_origin(request: Request) -> None:
    """Forms are posted from our own pages only (SameSite=Strict does most of it; Origin closes the rest)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise ServiceRefusal(403, "cross-origin form posts are refused")


async def login_page(request: Request) -> Response:
    target = safe_next(request.query_params.get("next", "/"))
    if signed_in(request):
        return RedirectResponse(target, status_code=303)
    return HTMLResponse(render("login.html", title="Sign in", next=target, error="", auth_on=True, signed_in=False))


async def login(request: Request) -> Response:
    svc = service_of(request)
    same_origin(request)
    body = await request.body()  # bounded by the route (MAX_FORM)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    target = safe_next(form.get("next", "/"))
    if svc.settings.auth == "none":
        return RedirectResponse(target, status_code=303)
    token = form.get("token", "").strip()
    if not token or not secrets.compare_digest(token.encode(), svc.settings.admin_token.encode()):
        return HTMLResponse(render("login.html", title="Sign in", next=target, auth_on=True, signed_in=False,
                                   error="That is not this service's admin token."), status_code=401)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(SESSION_COOKIE, session_value(svc.settings.admin_token), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/")
    return resp


async def logout(request: Request) -> Response:
    same_origin(request)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return resp


def wants_sign_in(request: Request) -> bool:
    """A 401 that a person's browser gets for a page: answered with the sign-in page rather than JSON."""
    path = request.url.path
    return not path.startswith(("/api/", "/static/", "/images/")) and not request.headers.get("x-console-fragment") \
        and request.method == "GET"


def sign_in_redirect(request: Request) -> Response:
    return RedirectResponse("/login?next=" + safe_next(request.url.path), status_code=303)


#: Stylesheet, scripts and Swagger UI: the same for everyone, nothing of the service's state.
_STATIC = Mount("/static", StaticFiles(directory=STATIC), name="static")
_STATIC.auth = Auth.PUBLIC  # type: ignore[attr-defined]

ROUTES = [
    route("/", clusters_page, methods=["GET"], auth=Auth.ADMIN),
    route("/clusters/{cluster_id}", cluster_page, methods=["GET"], auth=Auth.ADMIN),
    route("/infra-envs/{infra_env_id}/hosts/{host_id}", host_page, methods=["GET"], auth=Auth.ADMIN),
    route("/login", login_page, methods=["GET"], auth=Auth.PUBLIC),
    route("/login", login, methods=["POST"], auth=Auth.PUBLIC, max_body=MAX_FORM),
    route("/logout", logout, methods=["POST"], auth=Auth.PUBLIC, max_body=MAX_FORM),
    _STATIC,
]
