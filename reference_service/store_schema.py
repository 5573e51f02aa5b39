"""The tables of the reference service's database, and the indexes its history lookups use."""

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
