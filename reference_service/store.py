"""SQLite persistence of the reference service, so its state survives a restart (the agent must not notice).

Objects are stored as JSON documents in the shape of the spec models (``cluster``, ``infra-env``, ``host``),
which keeps the schema stable while area modules add fields. Step replies, events and (in test mode) the raw
requests the agents sent are append-only tables.

The database is created 0600. It keeps only a hash of each infra-env's agent token: the token itself is an
HMAC of the infra-env id under a key kept beside the database (``<db>.key``, 0600), so the service can hand it
out again (``/api/reference/infra-envs/{id}/token``) while a copy of the database alone grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS infra_envs (id TEXT PRIMARY KEY, token TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hosts (
    infra_env_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, cluster_id TEXT,
    PRIMARY KEY (infra_env_id, id));
CREATE TABLE IF NOT EXISTS replies (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, infra_env_id TEXT, host_id TEXT, step_id TEXT, step_type TEXT,
    exit_code INTEGER, output TEXT, error TEXT, received_at REAL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, cluster_id TEXT, host_id TEXT, infra_env_id TEXT,
    severity TEXT, message TEXT, event_time REAL);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT, path TEXT, headers TEXT, body TEXT, status INTEGER,
    received_at REAL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL, created_at REAL);
"""

#: Indexes for every lookup a request makes, so its cost does not grow with the hosts, replies and events of
#: others (a poll, a page or a reply must not scan the whole service). Created after the migration below.
INDEXES = """
CREATE INDEX IF NOT EXISTS hosts_by_cluster ON hosts (cluster_id);
CREATE INDEX IF NOT EXISTS replies_by_host ON replies (host_id, step_type, seq);
CREATE INDEX IF NOT EXISTS events_by_host ON events (host_id, seq);
CREATE INDEX IF NOT EXISTS events_by_cluster ON events (cluster_id, seq);
"""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._key = secrets.token_bytes(32)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self.path, 0o600)
            self._key = _private_key(Path(self.path + ".key"))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
            self._db.executescript(INDEXES)

    def _migrate(self) -> None:
        """Databases made before ``hosts.cluster_id`` existed get the column, filled from the documents."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(hosts)")}
        if "cluster_id" not in columns:
            self._db.execute("ALTER TABLE hosts ADD COLUMN cluster_id TEXT")
            self._db.execute("UPDATE hosts SET cluster_id = json_extract(doc, '$.cluster_id')")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return json.loads(row[0]) if row else None

    def _many(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- clusters and infra-envs -------------------------------------------------------------------------
    def get_cluster(self, cluster_id: str) -> dict[str, Any] | None:
        return self._one("SELECT doc FROM clusters WHERE id = ?", (cluster_id,))

    def list_clusters(self) -> list[dict[str, Any]]:
        return self._many("SELECT doc FROM clusters ORDER BY rowid")

    def save_cluster(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO clusters (id, doc) VALUES (?, ?)", (doc["id"], json.dumps(doc)))

    def get_infra_env(self, infra_env_id: str) -> dict[str, Any] | None:
        return self._one("SELECT doc FROM infra_envs WHERE id = ?", (infra_env_id,))

    def list_infra_envs(self) -> list[dict[str, Any]]:
        return self._many("SELECT doc FROM infra_envs ORDER BY rowid")

    def infra_env_token(self, infra_env_id: str) -> str | None:
        """The agent token of an infra-env (derived, never stored), or None when there is no such infra-env."""
        return self.new_infra_env_token(infra_env_id) if self.infra_env_token_hash(infra_env_id) else None

    def infra_env_token_hash(self, infra_env_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT token FROM infra_envs WHERE id = ?", (infra_env_id,)).fetchone()
        return str(row[0]) if row else None

    def new_infra_env_token(self, infra_env_id: str) -> str:
        return hmac.new(self._key, infra_env_id.encode(), hashlib.sha256).hexdigest()

    def save_infra_env(self, doc: dict[str, Any], token: str | None = None) -> None:
        with self._lock:
            digest = token_hash(token) if token is not None else self.infra_env_token_hash(doc["id"])
            if digest is None:
                digest = token_hash(self.new_infra_env_token(doc["id"]))
            self._db.execute("INSERT OR REPLACE INTO infra_envs (id, token, doc) VALUES (?, ?, ?)",
                             (doc["id"], digest, json.dumps(doc)))

    # -- hosts ------------------------------------------------------------------------------------------
    def get_host(self, infra_env_id: str, host_id: str) -> dict[str, Any] | None:
        return self._one("SELECT doc FROM hosts WHERE infra_env_id = ? AND id = ?", (infra_env_id, host_id))

    def list_hosts(self, infra_env_id: str | None = None, cluster_id: str | None = None) -> list[dict[str, Any]]:
        cond, args = _where(infra_env_id=infra_env_id, cluster_id=cluster_id)
        return self._many(f"SELECT doc FROM hosts{cond} ORDER BY rowid", args)

    def save_host(self, doc: dict[str, Any]) -> None:
        doc["updated_at"] = _now_iso()
        with self._lock:
            # An upsert keeps the row (and its rowid, the order hosts are listed in: registration order).
            self._db.execute("INSERT INTO hosts (infra_env_id, id, doc, cluster_id) VALUES (?, ?, ?, ?)"
                             " ON CONFLICT (infra_env_id, id) DO UPDATE SET doc = excluded.doc,"
                             " cluster_id = excluded.cluster_id",
                             (doc["infra_env_id"], doc["id"], json.dumps(doc), doc.get("cluster_id") or None))

    def delete_host(self, infra_env_id: str, host_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM hosts WHERE infra_env_id = ? AND id = ?", (infra_env_id, host_id))

    # -- history ----------------------------------------------------------------------------------------
    def add_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO replies (infra_env_id, host_id, step_id, step_type, exit_code, output, error,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (infra_env_id, host_id, reply.get("step_id", ""), reply.get("step_type", ""),
                 int(reply.get("exit_code", 0) or 0), reply.get("output", ""), reply.get("error", ""), time.time()),
            )

    def replies(self, host_id: str | None = None, step_type: str | None = None, *,
                last: int | None = None) -> list[dict[str, Any]]:
        """Replies oldest first; ``last`` keeps only the newest that many (read from the index, not filtered)."""
        cond, args = _where(host_id=host_id or None, step_type=step_type or None)
        sql = f"SELECT {_REPLY_COLUMNS} FROM replies{cond} ORDER BY seq"
        if last is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(last)}) ORDER BY seq"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [dict(zip(_REPLY_KEYS, r, strict=True)) for r in rows]

    def latest_replies(self, host_id: str) -> list[dict[str, Any]]:
        """The newest reply of each step type of one host: what a host's page shows, one indexed row a type."""
        sql = (f"SELECT {_REPLY_COLUMNS} FROM replies WHERE seq IN (SELECT MAX(seq) FROM replies"
               " WHERE host_id = ? GROUP BY step_type) ORDER BY seq")
        with self._lock:
            rows = self._db.execute(sql, (host_id,)).fetchall()
        return [dict(zip(_REPLY_KEYS, r, strict=True)) for r in rows]

    def add_event(self, message: str, *, severity: str = "info", cluster_id: str | None = None,
                  host_id: str | None = None, infra_env_id: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO events (cluster_id, host_id, infra_env_id, severity, message, event_time)"
                " VALUES (?, ?, ?, ?, ?, ?)", (cluster_id, host_id, infra_env_id, severity, message, time.time()))

    def events(self, *, cluster_id: str | None = None, host_id: str | None = None,
               last: int | None = None) -> list[dict[str, Any]]:
        """Events oldest first; ``last`` keeps only the newest that many."""
        cond, args = _where(cluster_id=cluster_id or None, host_id=host_id or None)
        sql = ("SELECT seq, cluster_id, host_id, infra_env_id, severity, message, event_time"
               f" FROM events{cond} ORDER BY seq")
        if last is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(last)}) ORDER BY seq"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [{"cluster_id": c, "host_id": h, "infra_env_id": ie, "severity": sev, "message": msg,
                 "event_time": _iso(t)} for _, c, h, ie, sev, msg, t in rows]

    def add_request(self, method: str, path: str, headers: dict[str, str], body: str, status: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (method, path, headers, body, status, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (method, path, json.dumps(headers), body, status, time.time()))

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT method, path, headers, body, status FROM requests ORDER BY seq").fetchall()
        return [{"method": m, "path": p, "headers": json.loads(h), "body": b, "status": s} for m, p, h, b, s in rows]

    def put_blob(self, key: str, data: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO blobs (key, data, created_at) VALUES (?, ?, ?)",
                             (key, data, time.time()))

    def get_blob(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None


_REPLY_KEYS = ("seq", "infra_env_id", "host_id", "step_id", "step_type", "exit_code", "output", "error",
               "received_at")
_REPLY_COLUMNS = ", ".join(_REPLY_KEYS)


def _where(**equal: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause of column equalities, the columns named in code and only the values bound."""
    given = {k: v for k, v in equal.items() if v is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in given), tuple(given.values())


def token_hash(token: str) -> str:
    """What the store keeps of an agent token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _private_key(path: Path) -> bytes:
    """The token key beside the database, made once (0600) and kept across restarts."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def _now_iso() -> str:
    return _iso(time.time())
