"""reference_service.store.schema: the token key made once and kept private, and old databases migrated."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

from reference_service.store.schema import INDEXES, SCHEMA, migrate, private_key


def test_the_key_is_made_once_0600_and_kept(tmp_path: Path) -> None:
    key = private_key(tmp_path / "db.key")
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / "db.key").stat().st_mode) == 0o600
    assert private_key(tmp_path / "db.key") == key  # a restart keeps the tokens it signed valid
    assert private_key(tmp_path / "other.key") != key


def test_a_database_without_hosts_cluster_id_gets_it_from_the_documents(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite")
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE hosts (infra_env_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,"
                     " PRIMARY KEY (infra_env_id, id));")
    db.execute("INSERT INTO hosts VALUES (?, ?, ?)", ("ie", "h1", json.dumps({"id": "h1", "cluster_id": "c1"})))
    db.execute("INSERT INTO hosts VALUES (?, ?, ?)", ("ie", "h2", json.dumps({"id": "h2"})))
    db.commit()
    def execute(sql: str) -> None:
        db.executescript(sql)

    migrate(path, execute)
    db.executescript(SCHEMA + INDEXES)  # what the store runs next: indexes on the new column
    assert db.execute("SELECT id, cluster_id FROM hosts ORDER BY id").fetchall() == [("h1", "c1"), ("h2", None)]
    ran: list[str] = []
    migrate(path, ran.append)
    assert ran == []  # a migrated (or new) database is left alone
    db.close()
