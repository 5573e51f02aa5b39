"""Which events the real service records, and the filters its events listing takes.

It records state changes and validation changes, not replies: a validation that starts failing is a warning
("Host h1: validation 'ntp-synced' that used to succeed is now failing", or "... failed" when it had been
pending), one that is fixed is an info ("... is now fixed"); a validation that keeps failing says nothing more.
Recording every failed step reply instead made one cluster's events 2,548 copies of the same NTP failure in 43
minutes. A host's status changes carry the severity of the status they reach (``GetEventSeverityFromHostStatus``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

Results = dict[str, list[dict[str, str]]]
SEVERITIES = ("info", "warning", "error", "critical")
#: Host statuses whose arrival is not an info (the real ``GetEventSeverityFromHostStatus``).
STATUS_SEVERITY = {"disconnected": "warning", "installing-pending-user-action": "warning",
                   "insufficient": "warning", "error": "error"}


def _statuses(results: Any) -> dict[str, str]:
    if isinstance(results, str):
        try:
            results = json.loads(results or "{}")
        except ValueError:
            return {}
    if not isinstance(results, dict):
        return {}
    return {str(r.get("id")): str(r.get("status")) for rs in results.values() if isinstance(rs, list)
            for r in rs if isinstance(r, dict)}


def validation_changes(before: Any, after: Results, host_name: str | None) -> Iterator[tuple[str, str]]:
    """(message, severity) for each validation whose status moved to or from failure; none the first time
    (a new host or cluster has no previous results to compare with, as in the real service)."""
    old = _statuses(before)
    if not old:
        return
    subject = f"Host {host_name}: validation" if host_name is not None else "Cluster validation"
    for vid, status in _statuses(after).items():
        previous = old.get(vid)
        if previous is None or previous == status:
            continue
        if status == "failure":
            how = "that used to succeed is now failing" if previous == "success" else "failed"
            yield f"{subject} '{vid}' {how}", "warning"
        elif status == "success" and previous == "failure":
            yield f"{subject} '{vid}' is now fixed", "info"


def status_severity(status: str) -> str:
    return STATUS_SEVERITY.get(status, "info")


def _listed(params: Any, name: str) -> list[str]:
    """A query array as the generated clients send it: repeated, or comma-separated (collectionFormat csv)."""
    values: list[str] = []
    for raw in params.getlist(name) if hasattr(params, "getlist") else [params.get(name)] if params.get(name) else []:
        values += [v.strip() for v in str(raw).split(",") if v.strip()]
    return values


def filter_events(events: list[dict[str, Any]], params: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``v2ListEvents``'s filters over ``events`` (oldest first): host_ids, infra_env_id, severities, message,
    cluster_level, then order, offset and limit; and the severity counts of the filtered events before paging
    (the ``Severity-Count-*`` headers). A bad value raises ValueError with the reason."""
    host_ids = set(_listed(params, "host_ids"))
    severities = set(_listed(params, "severities"))
    unknown = severities - set(SEVERITIES)
    if unknown:
        raise ValueError(f"severities: {sorted(unknown)[0]} is not one of {list(SEVERITIES)}")
    infra_env = params.get("infra_env_id")
    pattern = params.get("message")
    cluster_level = str(params.get("cluster_level", "")).lower() == "true"
    out = [e for e in events
           if (not host_ids or e.get("host_id") in host_ids or (cluster_level and not e.get("host_id")))
           and (not infra_env or e.get("infra_env_id") == infra_env)
           and (not cluster_level or host_ids or not e.get("host_id"))
           and (not pattern or re.search(re.escape(pattern), str(e.get("message")), re.IGNORECASE))]
    counts = {s: 0 for s in SEVERITIES}
    for e in out:
        counts[str(e.get("severity"))] = counts.get(str(e.get("severity")), 0) + 1
    selected = [e for e in out if not severities or e.get("severity") in severities]
    order = params.get("order") or "ascending"
    if order not in ("ascending", "descending"):
        raise ValueError(f"order: {order} is not one of ['ascending', 'descending']")
    if order == "descending":
        selected.reverse()
    offset, limit = _integer(params, "offset", 0), _integer(params, "limit", -1)
    selected = selected[offset:]
    if limit >= 0:
        selected = selected[:limit]
    return selected, counts


def _integer(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} in query must be of type integer: \"{raw}\"") from None
    if value < 0 and name == "offset":
        raise ValueError(f"{name} in query should be greater than or equal to 0")
    return value
