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
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import json_codec
from reference_service.store import refs as store_refs
from reference_service.store.committer import AsJson
from reference_service.store.history import History, _iso
from reference_service.store.schema import INDEXES, SCHEMA, migrate, private_key
from reference_service.store.writer import Writer
from rules.stored_text import StoredText

#: What a poll changes when nothing else does (orchestrator.next_steps); ``updated_at`` moves with every save.
CHECKIN_FIELDS = ("checked_in_at", "_checked_in", "timestamp", "discovery_agent_version")
_IGNORED = {*CHECKIN_FIELDS, "updated_at"}
#: Replies kept per host and step type, the newest (besides any a host field refers to); of big outputs
#: (``store_refs.SPILL``), fewer. With every reply kept, 1,000 hosts grew the database by 3 MB a second.
KEEP_REPLIES = 20
KEEP_BIG_REPLIES = 2


def _only_checkin(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return all(before.get(k) == after.get(k) for k in before.keys() | after.keys() if k not in _IGNORED)


class Store(History):
    """The documents in memory, written through to SQLite in group commits (``store_writer``).

    The service owns its database: documents are loaded once and every change goes through this object, so a
    lookup costs a dictionary access, not a query and a JSON decode (at 1,000 hosts, decoding the cluster's
    documents on every poll was most of the service's time). ``get_*`` and ``list_*`` return copies the caller
    may change; ``peers`` returns the stored documents themselves, read-only, for the rules' views. A field
    copying a big reply output holds a handle to the reply (``keep_text``), whose text is read back when needed.
    History (replies, events, the request journal, blobs) is read from SQLite, after the writer caught up.
    """

    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        self.path = str(path)
        self._key = secrets.token_bytes(32)
        #: Whether big texts are let go of once committed (``store_refs``); an in-memory store holds them all.
        self._spill = self.path != ":memory:"
        if self.path == ":memory:":  # one database shared by the writer and the reader connections
            self.path = f"file:store-{secrets.token_hex(8)}?mode=memory&cache=shared"
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self.path, 0o600)
            self._key = private_key(Path(self.path + ".key"))
        self._writer = Writer(self.path, sync=sync)
        self._writer.execute_now(SCHEMA)
        migrate(self.path, self._writer.execute_now)
        self._writer.execute_now(INDEXES)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, uri=True)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()
        self._clusters: dict[str, dict[str, Any]] = {}
        self._infra_envs: dict[str, tuple[dict[str, Any], str]] = {}
        #: Hosts by (infra-env, id), in registration order (as SQLite's rowid), and two indexes of keys.
        self._hosts: dict[tuple[str, str], dict[str, Any]] = {}
        self._order: dict[tuple[str, str], int] = {}
        self._next_order = 0
        self._unsaved: set[tuple[str, str]] = set()
        #: Hosts whose only unsaved change is a poll's check-in: written as a row of its own, not the document.
        self._unsaved_checkins: set[tuple[str, str]] = set()
        self._cluster_lists: dict[str, tuple[list[dict[str, Any]], dict[tuple[str, str], int]]] = {}
        self._by_cluster: dict[str, dict[tuple[str, str], None]] = {}
        self._by_infra_env: dict[str, dict[tuple[str, str], None]] = {}
        #: Handles to big texts not yet let go of, with the write their reply was submitted as.
        self._fresh: deque[tuple[int, StoredText]] = deque()
        #: Told of every host document replaced (old, new) or deleted (old, None) after loading: the service
        #: keeps each cluster's model up to date with them (``rules.cluster_model``).
        self.host_listeners: list[Callable[[dict[str, Any] | None, dict[str, Any] | None], None]] = []
        self._load()

    def _load(self) -> None:
        for (doc,) in self._db.execute("SELECT doc FROM clusters ORDER BY rowid"):
            cluster = json_codec.loads(doc)
            self._clusters[cluster["id"]] = cluster
        for doc, token in self._db.execute("SELECT doc, token FROM infra_envs ORDER BY rowid"):
            infra_env = json_codec.loads(doc)
            self._infra_envs[infra_env["id"]] = (infra_env, str(token))
        for rowid, doc in self._db.execute("SELECT rowid, doc FROM hosts ORDER BY rowid"):
            self._put_host(store_refs.resolve(self._db, json_codec.loads(doc), self._text, self._spill), rowid)
        for infra_env_id, host_id, fields in self._db.execute("SELECT infra_env_id, id, fields FROM checkins"):
            host = self._hosts.get((infra_env_id, host_id))
            checkin = json_codec.loads(fields)
            if host is not None and float(checkin.get("_checked_in") or 0) >= float(host.get("_checked_in") or 0):
                host.update(checkin)  # a check-in no older than the document's last write

    def close(self) -> None:
        self.persist()
        self._writer.close()
        with self._lock:
            self._db.close()

    # -- durability -------------------------------------------------------------------------------------
    @property
    def submitted(self) -> int:
        """How many writes were submitted: what a request waits for with ``committed`` before it answers."""
        return self._writer.enqueued

    async def committed(self) -> None:
        """Until the writes submitted so far are on disk (raises StoreUnavailable when they cannot be)."""
        await self._writer.committed()

    def flush(self) -> None:
        self._writer.flush()

    def stuck(self) -> str | None:
        """Why the database cannot take writes now (its disk stuck, or writes refused), None when it can."""
        return self._writer.stuck()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        self._writer.submit(sql, args)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """History rows, once the writer has committed what was submitted before (read your writes)."""
        self._writer.flush()
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- clusters and infra-envs -------------------------------------------------------------------------
    def get_cluster(self, cluster_id: str) -> dict[str, Any] | None:
        doc = self._clusters.get(cluster_id)
        return _copy(doc) if doc is not None else None

    def list_cluster_ids(self) -> list[str]:
        return list(self._clusters)

    def list_clusters(self) -> list[dict[str, Any]]:
        return [_copy(d) for d in list(self._clusters.values())]

    def save_cluster(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._clusters[doc["id"]] = _copy(doc)
            self._write("INSERT INTO clusters (id, doc) VALUES (?, ?)"
                        " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc", (doc["id"], json_codec.dumps(doc)))

    def get_infra_env(self, infra_env_id: str) -> dict[str, Any] | None:
        entry = self._infra_envs.get(infra_env_id)
        return _copy(entry[0]) if entry is not None else None

    def list_infra_envs(self) -> list[dict[str, Any]]:
        return [_copy(doc) for doc, _ in list(self._infra_envs.values())]

    def infra_env_token(self, infra_env_id: str) -> str | None:
        """The agent token of an infra-env (derived, never stored), or None when there is no such infra-env."""
        return self.new_infra_env_token(infra_env_id) if self.infra_env_token_hash(infra_env_id) else None

    def infra_env_token_hash(self, infra_env_id: str) -> str | None:
        entry = self._infra_envs.get(infra_env_id)
        return entry[1] if entry is not None else None

    def new_infra_env_token(self, infra_env_id: str) -> str:
        return hmac.new(self._key, infra_env_id.encode(), hashlib.sha256).hexdigest()

    def save_infra_env(self, doc: dict[str, Any], token: str | None = None) -> None:
        with self._lock:
            digest = token_hash(token) if token is not None else self.infra_env_token_hash(doc["id"])
            if digest is None:
                digest = token_hash(self.new_infra_env_token(doc["id"]))
            self._infra_envs[doc["id"]] = (_copy(doc), digest)
            self._write("INSERT INTO infra_envs (id, token, doc) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE"
                        " SET token = excluded.token, doc = excluded.doc", (doc["id"], digest, json_codec.dumps(doc)))

    def delete_cluster(self, cluster_id: str) -> None:
        """The cluster document (its hosts are deleted one by one before, with ``delete_host``)."""
        with self._lock:
            self._clusters.pop(cluster_id, None)
            self._by_cluster.pop(cluster_id, None)
            self._cluster_lists.pop(cluster_id, None)
            self._write("DELETE FROM clusters WHERE id = ?", (cluster_id,))

    def delete_infra_env(self, infra_env_id: str) -> None:
        with self._lock:
            self._infra_envs.pop(infra_env_id, None)
            self._write("DELETE FROM infra_envs WHERE id = ?", (infra_env_id,))

    # -- hosts ------------------------------------------------------------------------------------------
    def get_host(self, infra_env_id: str, host_id: str) -> dict[str, Any] | None:
        doc = self._hosts.get((infra_env_id, host_id))
        return _copy(doc) if doc is not None else None

    def count_hosts(self, infra_env_id: str) -> int:
        with self._lock:
            return len(self._by_infra_env.get(infra_env_id, {}))

    def list_hosts(self, infra_env_id: str | None = None, cluster_id: str | None = None) -> list[dict[str, Any]]:
        return [_copy(d) for d in self.peers(infra_env_id=infra_env_id, cluster_id=cluster_id)]

    def peers(self, infra_env_id: str | None = None, cluster_id: str | None = None) -> list[dict[str, Any]]:
        """The stored documents of a cluster's (or an infra-env's) hosts, in registration order: shared, so
        the caller must not change them (the rules read them; ``save_host`` replaces them)."""
        with self._lock:
            if cluster_id is not None and infra_env_id is None:
                return self._cluster_list(cluster_id)
            if cluster_id is not None:
                keys: Any = self._by_cluster.get(cluster_id, {})
            elif infra_env_id is not None:
                keys = self._by_infra_env.get(infra_env_id, {})
            else:
                keys = self._hosts
            docs = [self._hosts[k] for k in keys]
        if cluster_id is not None and infra_env_id is not None:
            docs = [d for d in docs if d["infra_env_id"] == infra_env_id]
        return docs

    def _cluster_list(self, cluster_id: str) -> list[dict[str, Any]]:
        """A cluster's documents, kept as a list between requests (a poll of a 1,000-host cluster reads it
        several times): a save replaces its slot, a member joining or leaving drops it."""
        cached = self._cluster_lists.get(cluster_id)
        if cached is None:
            keys = list(self._by_cluster.get(cluster_id, {}))
            cached = ([self._hosts[k] for k in keys], {k: i for i, k in enumerate(keys)})
            self._cluster_lists[cluster_id] = cached
        return cached[0]

    def cluster_size(self, cluster_id: str) -> int:
        return len(self._by_cluster.get(cluster_id, ()))

    def peek_host(self, infra_env_id: str, host_id: str) -> dict[str, Any] | None:
        """The stored document itself (read-only), to compare with, without a copy."""
        return self._hosts.get((infra_env_id, host_id))

    def peek_cluster(self, cluster_id: str) -> dict[str, Any] | None:
        return self._clusters.get(cluster_id)

    def save_host(self, doc: dict[str, Any], durable: bool = True) -> None:
        """``durable=False`` keeps the change in memory only, until the host's next durable save or
        ``persist``: for what a restart may lose (a poll's check-in time), so a poll writes nothing."""
        doc["updated_at"] = _now_iso()
        self._let_go()
        with self._lock:
            key = (doc["infra_env_id"], doc["id"])
            previous = self._hosts.get(key)
            stored = _copy(doc)
            self._put_host(stored, None)
            if not durable:
                if key in self._unsaved or previous is None or not _only_checkin(previous, stored):
                    self._unsaved.add(key)
                else:
                    self._unsaved_checkins.add(key)
                return
            self._unsaved.discard(key)
            self._unsaved_checkins.discard(key)
            self._write_host(stored)

    def persist(self) -> None:
        """Write the hosts changed in memory only (``save_host(durable=False)``)."""
        with self._lock:
            keys, self._unsaved = self._unsaved, set()
            checkins, self._unsaved_checkins = self._unsaved_checkins - keys, set()
            for key in keys:
                doc = self._hosts.get(key)
                if doc is not None:
                    self._write_host(doc)
            for key in checkins:  # a few bytes each, where the document holds 300 KB reports at 1,000 hosts
                doc = self._hosts.get(key)
                if doc is not None:
                    fields = {k: doc[k] for k in CHECKIN_FIELDS if k in doc}
                    self._write("INSERT INTO checkins (infra_env_id, id, fields) VALUES (?, ?, ?)"
                                " ON CONFLICT (infra_env_id, id) DO UPDATE SET fields = excluded.fields",
                                (*key, AsJson(fields)))

    def _write_host(self, doc: dict[str, Any]) -> None:
        # An upsert keeps the row (and its rowid, the order hosts are listed in: registration order).
        self._write("INSERT INTO hosts (infra_env_id, id, doc, cluster_id) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (infra_env_id, id) DO UPDATE SET doc = excluded.doc,"
                    " cluster_id = excluded.cluster_id",
                    (doc["infra_env_id"], doc["id"],
                     AsJson(store_refs.row(doc)),
                     doc.get("cluster_id") or None))

    def _put_host(self, doc: dict[str, Any], rowid: int | None) -> None:
        key = (doc["infra_env_id"], doc["id"])
        old = self._hosts.get(key)
        if old is None:
            self._next_order = max(self._next_order, rowid or 0) + 1
            self._order[key] = rowid if rowid is not None else self._next_order
            self._by_infra_env.setdefault(key[0], {})[key] = None
        elif old.get("cluster_id") != doc.get("cluster_id") and old.get("cluster_id"):
            self._by_cluster.get(old["cluster_id"], {}).pop(key, None)
            self._cluster_lists.pop(old["cluster_id"], None)
        self._hosts[key] = doc
        for listener in self.host_listeners:
            listener(old, doc)
        cluster_id = doc.get("cluster_id")
        cached = self._cluster_lists.get(cluster_id) if cluster_id else None
        if cached is not None:
            slot = cached[1].get(key)
            if slot is None:
                self._cluster_lists.pop(str(cluster_id), None)
            else:
                cached[0][slot] = doc
        if cluster_id:
            members = self._by_cluster.setdefault(cluster_id, {})
            if key not in members:
                in_order = not members or self._order[next(reversed(members))] < self._order[key]
                members[key] = None
                if not in_order:  # a host bound to the cluster after hosts registered later than it
                    ordered = sorted(members, key=self._order.__getitem__)
                    members.clear()
                    members.update(dict.fromkeys(ordered))

    def delete_host(self, infra_env_id: str, host_id: str) -> None:
        key = (infra_env_id, host_id)
        with self._lock:
            old = self._hosts.pop(key, None)
            self._order.pop(key, None)
            self._unsaved.discard(key)
            self._unsaved_checkins.discard(key)
            self._by_infra_env.get(infra_env_id, {}).pop(key, None)
            if old is not None and old.get("cluster_id"):
                self._by_cluster.get(old["cluster_id"], {}).pop(key, None)
                self._cluster_lists.pop(old["cluster_id"], None)
            self._write("DELETE FROM hosts WHERE infra_env_id = ? AND id = ?", key)
            self._write("DELETE FROM checkins WHERE infra_env_id = ? AND id = ?", key)
        for listener in self.host_listeners:
            listener(old, None)

    # -- replies and the texts host fields copy from them (history: store_history) ----------------------
    def add_reply(self, infra_env_id: str, host_id: str, reply: dict[str, Any]) -> None:
        """The reply, and the host's replies of its type beyond the newest ``KEEP_REPLIES`` deleted."""
        step_type, output = reply.get("step_type", ""), reply.get("output", "")
        self._write(
            "INSERT INTO replies (infra_env_id, host_id, step_id, step_type, exit_code, output, error,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (infra_env_id, host_id, reply.get("step_id", ""), step_type,
             int(reply.get("exit_code", 0) or 0), output, reply.get("error", ""), time.time()),
        )
        keep = KEEP_BIG_REPLIES if isinstance(output, str) and len(output) >= store_refs.SPILL else KEEP_REPLIES
        referred = [v.step_id for v in (self._hosts.get((infra_env_id, host_id)) or {}).values()
                    if isinstance(v, StoredText) and v.step_type == step_type]
        self._write("DELETE FROM replies WHERE host_id = ? AND step_type = ? AND seq <= (SELECT seq FROM replies"
                    " WHERE host_id = ? AND step_type = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)"
                    f" AND step_id NOT IN ({', '.join('?' * len(referred))})",
                    (host_id, step_type, host_id, step_type, keep, *referred))

    def keep_text(self, host_id: str, reply: dict[str, Any]) -> Any:
        """What a host field copying the output of a reply added by ``add_reply`` holds (``store_refs``): the
        text when it is small, else a handle whose text, when big, is let go of once the reply is committed."""
        kept = store_refs.handle(host_id, reply, self._text)
        if self._spill and isinstance(kept, StoredText) and kept.size >= store_refs.SPILL:
            self._fresh.append((self._writer.enqueued, kept))
        return kept

    def _let_go(self) -> None:
        done = self._writer.done
        while self._fresh and self._fresh[0][0] <= done:
            self._fresh.popleft()[1].release()

    def _text(self, handle: StoredText) -> str:
        with self._lock:
            found = self._db.execute("SELECT output FROM replies WHERE host_id = ? AND step_type = ? AND step_id = ?"
                                     " ORDER BY seq DESC LIMIT 1",
                                     (handle.host_id, handle.step_type, handle.step_id)).fetchone()
        return str(found[0] or "") if found else ""


def _copy(value: Any) -> Any:
    """A copy of a JSON document (strings, numbers are shared: they are immutable), faster than deepcopy."""
    if isinstance(value, dict):
        return {k: _copy(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def token_hash(token: str) -> str:
    """What the store keeps of an agent token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now_iso() -> str:
    return _iso(time.time())
