"""Schema of the store and its migrations, numbered by version.

`MIGRATIONS[i]` takes a database from version i to i+1; the SQLite backend
records the version in `PRAGMA user_version`. All times are UTC epoch seconds
(REAL). Statuses and severities are checked by the database itself.
"""

TASK_STATUSES = ("PENDING", "RUNNING", "DONE", "FAILED", "WAITING_HUMAN", "CANCELLED")
TERMINAL_STATUSES = ("DONE", "FAILED", "CANCELLED")
ALERT_SEVERITIES = ("info", "warning", "critical")

_TASKS = """
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    skill            TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    status           TEXT    NOT NULL CHECK (status IN
                         ('PENDING','RUNNING','DONE','FAILED','WAITING_HUMAN','CANCELLED')),
    assigned_to      TEXT,
    idempotency_key  TEXT UNIQUE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    deps_pending     INTEGER NOT NULL DEFAULT 0,
    available_at     REAL    NOT NULL,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    worker           TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    error            TEXT,
    error_reason     TEXT,
    question         TEXT,
    answer           TEXT,
    created_by       TEXT
);
-- The claim path: only claimable rows live in this index, so finished history
-- never slows a claim down.
CREATE INDEX ix_tasks_claim ON tasks (priority DESC, id)
    WHERE status = 'PENDING' AND deps_pending = 0;
CREATE INDEX ix_tasks_delayed ON tasks (available_at)
    WHERE status = 'PENDING' AND deps_pending = 0;
CREATE INDEX ix_tasks_running ON tasks (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX ix_tasks_status ON tasks (status, id);
CREATE INDEX ix_tasks_status_skill ON tasks (status, skill);
CREATE INDEX ix_tasks_skill ON tasks (skill, id);
CREATE INDEX ix_tasks_worker ON tasks (worker, id);
CREATE INDEX ix_tasks_assigned ON tasks (assigned_to, id) WHERE assigned_to IS NOT NULL;
CREATE INDEX ix_tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE task_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    attempt_no  INTEGER NOT NULL,
    worker      TEXT    NOT NULL,
    token       TEXT    NOT NULL,
    started_at  REAL    NOT NULL,
    ended_at    REAL,
    outcome     TEXT    NOT NULL DEFAULT 'running',
    error       TEXT
);
CREATE INDEX ix_attempts_task ON task_attempts (task_id);
CREATE INDEX ix_attempts_ended ON task_attempts (ended_at);

CREATE TABLE task_deps (
    task_id    INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    depends_on INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX ix_deps_parent ON task_deps (depends_on);
"""

_FLEET_STATE = """
CREATE TABLE agents (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    host           TEXT NOT NULL,
    pid            INTEGER,
    status         TEXT NOT NULL,
    current_task   INTEGER,
    started_at     REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    progress       INTEGER NOT NULL DEFAULT 0,
    detail         TEXT
);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at REAL NOT NULL,
    read_at    REAL
);
CREATE INDEX ix_messages_inbox ON messages (recipient, read_at, id);
CREATE INDEX ix_messages_channel ON messages (channel, id);

CREATE TABLE notes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX ix_notes_channel ON notes (channel, created_at);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    severity    TEXT NOT NULL CHECK (severity IN ('info','warning','critical')),
    component   TEXT NOT NULL,
    message     TEXT NOT NULL,
    dedup_key   TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1,
    acked_at    REAL,
    acked_by    TEXT
);
-- At most one open alert per dedup key: a repeat bumps the open one.
CREATE UNIQUE INDEX ux_alerts_open ON alerts (dedup_key) WHERE acked_at IS NULL;

CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    task_id INTEGER,
    agent   TEXT,
    detail  TEXT
);
CREATE INDEX ix_events_task ON events (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX ix_events_agent ON events (agent, id) WHERE agent IS NOT NULL;
CREATE INDEX ix_events_ts ON events (ts);

CREATE TABLE flags (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    updated_by TEXT
);

CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at  REAL NOT NULL
);

-- One row per supervisor liveness sample: what ran and what was expected.
CREATE TABLE liveness (
    ts              REAL NOT NULL,
    expected        INTEGER NOT NULL,
    alive           INTEGER NOT NULL,
    busy            INTEGER NOT NULL
);
CREATE INDEX ix_liveness_ts ON liveness (ts);
"""

_HW_SAMPLES = """
-- Downsampled hardware history (hardware supervisor), for sparklines.
CREATE TABLE hw_samples (
    ts            REAL NOT NULL,
    cpu_pct       REAL,
    mem_pct       REAL,
    gpu_temp_c    REAL,
    gpu_util_pct  REAL,
    vram_used_mb  REAL,
    vram_total_mb REAL,
    power_w       REAL,
    tier          TEXT,
    thermal_state TEXT,
    gpus          TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX ix_hw_samples_ts ON hw_samples (ts);
"""

_MODEL_USAGE = """
-- One row per model request (retries and failovers included).
CREATE TABLE model_usage (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    ts                 REAL    NOT NULL,
    call_id            TEXT,
    task_id            INTEGER,
    skill              TEXT,
    agent              TEXT,
    provider           TEXT    NOT NULL,
    model              TEXT,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL    NOT NULL DEFAULT 0,
    cache_savings_usd  REAL    NOT NULL DEFAULT 0,
    latency_ms         REAL,
    success            INTEGER NOT NULL CHECK (success IN (0, 1)),
    failover_from      TEXT,
    reason             TEXT,
    error              TEXT
);
CREATE INDEX ix_usage_ts ON model_usage (ts);
CREATE INDEX ix_usage_skill_ts ON model_usage (skill, ts);
CREATE INDEX ix_usage_task ON model_usage (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX ix_usage_call ON model_usage (call_id);

-- Shared per-provider state: circuit breaker, Retry-After cool-down, spacing.
CREATE TABLE provider_state (
    provider             TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    opened_until         REAL    NOT NULL DEFAULT 0,
    half_open            INTEGER NOT NULL DEFAULT 0,
    probe_until          REAL    NOT NULL DEFAULT 0,
    cooldown_until       REAL    NOT NULL DEFAULT 0,
    next_slot_at         REAL    NOT NULL DEFAULT 0,
    last_error           TEXT,
    updated_at           REAL    NOT NULL
);

-- Request times per provider for RPM/RPD windows (pruned after a day).
CREATE TABLE provider_requests (
    provider TEXT NOT NULL,
    ts       REAL NOT NULL
);
CREATE INDEX ix_provider_requests ON provider_requests (provider, ts);

-- Budget held by calls in flight; released when their usage row is written.
CREATE TABLE budget_reservations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    skill      TEXT,
    usd        REAL    NOT NULL,
    calls      INTEGER NOT NULL,
    created_at REAL    NOT NULL,
    expires_at REAL    NOT NULL
);
CREATE INDEX ix_budget_reservations ON budget_reservations (skill, expires_at);
"""

# Monitoring reads events by action (worker exits per agent, restarts in the
# last hour) without scanning the whole audit log.
_EVENTS_BY_ACTION = """
CREATE INDEX ix_events_action ON events (action, agent, id);
"""

# Fewer index pages per queue commit: a task due at once never enters the
# delayed index (only rows with available_at > updated_at can be in the future),
# and an unclaimed task (worker NULL) never enters the worker index.
# (status, skill) is dropped: every status change moved two entries in it, and
# the per-skill counts it served scan the whole history anyway.
_QUEUE_HOT_PATH = """
DROP INDEX ix_tasks_delayed;
CREATE INDEX ix_tasks_delayed_v2 ON tasks (available_at)
    WHERE status = 'PENDING' AND deps_pending = 0 AND available_at > updated_at;
DROP INDEX ix_tasks_worker;
CREATE INDEX ix_tasks_worker_v2 ON tasks (worker, id) WHERE worker IS NOT NULL;
DROP INDEX ix_tasks_status_skill;
"""

MIGRATIONS: list[str] = [
    _TASKS + _FLEET_STATE,
    _HW_SAMPLES,
    _MODEL_USAGE,
    _EVENTS_BY_ACTION,
    _QUEUE_HOT_PATH,
]

SCHEMA_VERSION = len(MIGRATIONS)
