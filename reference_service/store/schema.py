"""The tables of the reference service's database, the indexes its history lookups use, and the token key kept
beside it."""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

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
CREATE TABLE IF NOT EXISTS checkins (
    infra_env_id TEXT NOT NULL, id TEXT NOT NULL, fields TEXT NOT NULL, PRIMARY KEY (infra_env_id, id));
"""

#: Indexes for every lookup a request makes, so its cost does not grow with the hosts, replies and events of
#: others (a poll, a page or a reply must not scan the whole service). Created after the migration below.
INDEXES = """
CREATE INDEX IF NOT EXISTS hosts_by_cluster ON hosts (cluster_id);
CREATE INDEX IF NOT EXISTS replies_by_host ON replies (host_id, step_type, seq);
CREATE INDEX IF NOT EXISTS events_by_host ON events (host_id, seq);
CREATE INDEX IF NOT EXISTS events_by_cluster ON events (cluster_id, seq);
"""


def migrate(path: str, execute: Callable[[str], None]) -> None:
    """Databases made before ``hosts.cluster_id`` existed get the column, filled from the documents."""
    db = sqlite3.connect(path, uri=True)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(hosts)")}
    finally:
        db.close()
    if "cluster_id" not in columns:
        execute("ALTER TABLE hosts ADD COLUMN cluster_id TEXT;"
                " UPDATE hosts SET cluster_id = json_extract(doc, '$.cluster_id');")


def private_key(path: Path) -> bytes:
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
