"""What the store keeps as history rather than as documents: step replies, events, the request journal (test
mode) and blobs. Append-only tables, read from SQLite once the writer has committed what was submitted before."""

from __future__ import annotations

import json
import time
from typing import Any


class History:
    """The history half of ``store.Store``, which provides the write queue and the reads."""

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def replies(self, host_id: str | None = None, step_type: str | None = None, *,
                last: int | None = None) -> list[dict[str, Any]]:
        """Replies oldest first; ``last`` keeps only the newest that many (read from the index, not filtered)."""
        cond, args = _where(host_id=host_id or None, step_type=step_type or None)
        sql = f"SELECT {_REPLY_COLUMNS} FROM replies{cond} ORDER BY seq"
        if last is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(last)}) ORDER BY seq"
        return [dict(zip(_REPLY_KEYS, r, strict=True)) for r in self._read(sql, args)]

    def latest_replies(self, host_id: str) -> list[dict[str, Any]]:
        """The newest reply of each step type of one host: what a host's page shows, one indexed row a type."""
        sql = (f"SELECT {_REPLY_COLUMNS} FROM replies WHERE seq IN (SELECT MAX(seq) FROM replies"
               " WHERE host_id = ? GROUP BY step_type) ORDER BY seq")
        return [dict(zip(_REPLY_KEYS, r, strict=True)) for r in self._read(sql, (host_id,))]

    def add_event(self, message: str, *, severity: str = "info", cluster_id: str | None = None,
                  host_id: str | None = None, infra_env_id: str | None = None) -> None:
        self._write("INSERT INTO events (cluster_id, host_id, infra_env_id, severity, message, event_time)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (cluster_id, host_id, infra_env_id, severity, message, time.time()))

    def events(self, *, cluster_id: str | None = None, host_id: str | None = None,
               last: int | None = None) -> list[dict[str, Any]]:
        """Events oldest first; ``last`` keeps only the newest that many."""
        cond, args = _where(cluster_id=cluster_id or None, host_id=host_id or None)
        sql = ("SELECT seq, cluster_id, host_id, infra_env_id, severity, message, event_time"
               f" FROM events{cond} ORDER BY seq")
        if last is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(last)}) ORDER BY seq"
        return [{"cluster_id": c, "host_id": h, "infra_env_id": ie, "severity": sev, "message": msg,
                 "event_time": _iso(t)} for _, c, h, ie, sev, msg, t in self._read(sql, args)]

    def event_counts(self, *, cluster_id: str | None = None, host_id: str | None = None) -> dict[str, int]:
        """How many events of a cluster or a host there are of each severity."""
        cond, args = _where(cluster_id=cluster_id or None, host_id=host_id or None)
        return {str(s): int(n) for s, n in
                self._read(f"SELECT severity, COUNT(*) FROM events{cond} GROUP BY severity", args)}

    def event_page(self, *, cluster_id: str | None = None, host_id: str | None = None, severity: str | None = None,
                   offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """A page of events newest first, of one severity when given: what the console lists, read from the
        index a page at a time (a cluster's events grow without bound). ``at`` is the time in seconds."""
        cond, args = _where(cluster_id=cluster_id or None, host_id=host_id or None, severity=severity or None)
        rows = self._read("SELECT cluster_id, host_id, infra_env_id, severity, message, event_time"
                          f" FROM events{cond} ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset))
        return [{"cluster_id": c, "host_id": h, "infra_env_id": ie, "severity": sev, "message": msg, "at": t,
                 "event_time": _iso(t)} for c, h, ie, sev, msg, t in rows]

    def add_request(self, method: str, path: str, headers: dict[str, str], body: str, status: int) -> None:
        self._write("INSERT INTO requests (method, path, headers, body, status, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (method, path, json.dumps(headers), body, status, time.time()))

    def requests(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT method, path, headers, body, status, received_at FROM requests ORDER BY seq")
        return [{"method": m, "path": p, "headers": json.loads(h), "body": b, "status": s, "received_at": t}
                for m, p, h, b, s, t in rows]

    def put_blob(self, key: str, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO blobs (key, data, created_at) VALUES (?, ?, ?)", (key, data, time.time()))

    def get_blob(self, key: str) -> bytes | None:
        rows = self._read("SELECT data FROM blobs WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None


_REPLY_KEYS = ("seq", "infra_env_id", "host_id", "step_id", "step_type", "exit_code", "output", "error",
               "received_at")
_REPLY_COLUMNS = ", ".join(_REPLY_KEYS)


def _where(**equal: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause of column equalities, the columns named in code and only the values bound."""
    given = {k: v for k, v in equal.items() if v is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in given), tuple(given.values())


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"
