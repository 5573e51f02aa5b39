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
    infra_env_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (infra_env_id, id));
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
        hosts = self._many("SELECT doc FROM hosts ORDER BY rowid")
        if infra_env_id is not None:
            hosts = [h for h in hosts if h.get("infra_env_id") == infra_env_id]
        if cluster_id is not None:
            hosts = [h for h in hosts if h.get("cluster_id") == cluster_id]
        return hosts

    def save_host(self, doc: dict[str, Any]) -> None:
        doc["updated_at"] = _now_iso()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO hosts (infra_env_id, id, doc) VALUES (?, ?, ?)",
                             (doc["infra_env_id"], doc["id"], json.dumps(doc)))

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

    def replies(self, host_id: str | None = None, step_type: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT seq, infra_env_id, host_id, step_id, step_type, exit_code, output, error, received_at"
               " FROM replies")
        cond, args = [], []
        if host_id:
            cond.append("host_id = ?")
            args.append(host_id)
        if step_type:
            cond.append("step_type = ?")
            args.append(step_type)
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", tuple(args)).fetchall()
        keys = ("seq", "infra_env_id", "host_id", "step_id", "step_type", "exit_code", "output", "error",
                "received_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def add_event(self, message: str, *, severity: str = "info", cluster_id: str | None = None,
                  host_id: str | None = None, infra_env_id: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO events (cluster_id, host_id, infra_env_id, severity, message, event_time)"
                " VALUES (?, ?, ?, ?, ?, ?)", (cluster_id, host_id, infra_env_id, severity, message, time.time()))

    def events(self, *, cluster_id: str | None = None, host_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT cluster_id, host_id, infra_env_id, severity, message, event_time FROM events ORDER BY seq"
            ).fetchall()
        out = []
        for c, h, ie, sev, msg, t in rows:
            if (cluster_id and c != cluster_id) or (host_id and h != host_id):
                continue
            out.append({"cluster_id": c, "host_id": h, "infra_env_id": ie, "severity": sev, "message": msg,
                        "event_time": _iso(t)})
        return out

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
