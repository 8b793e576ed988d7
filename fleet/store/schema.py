"""Schema of the store and its migrations, numbered by version.

`MIGRATIONS[i]` takes a database from version i to i+1; the SQLite backend
records the version in `PRAGMA user_version`. (Before the first release the
queue's own migrations were folded into version 1; add new ones at the end.) All times are UTC epoch seconds
(REAL). Statuses and severities are checked by the database itself.
"""

TASK_STATUSES = ("PENDING", "RUNNING", "DONE", "FAILED", "WAITING_HUMAN", "CANCELLED")
TERMINAL_STATUSES = ("DONE", "FAILED", "CANCELLED")
ALERT_SEVERITIES = ("info", "warning", "critical")

_TASKS = """
-- The queue's tables (tasks, task_attempts, events) never delete rows, so a
-- plain INTEGER PRIMARY KEY (max + 1) hands out the same ever-growing ids as
-- AUTOINCREMENT without writing sqlite_sequence on every insert. Whoever adds
-- pruning must keep the newest row of each, or switch back to AUTOINCREMENT.
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    skill            TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    status           TEXT    NOT NULL CHECK (status IN
                         ('PENDING','RUNNING','DONE','FAILED','WAITING_HUMAN','CANCELLED')),
    assigned_to      TEXT,
    idempotency_key  TEXT,
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
    created_by       TEXT,
    -- 1 once some task depends on this one: completing a task without
    -- dependents skips the children refresh.
    has_dependents   INTEGER NOT NULL DEFAULT 0
);
-- The claim path: only claimable rows live in this index, so finished history
-- never slows a claim down.
CREATE INDEX ix_tasks_claim ON tasks (priority DESC, id)
    WHERE status = 'PENDING' AND deps_pending = 0;
-- Delayed work only (backoff, scheduled): a task due at once was written with
-- available_at <= updated_at and never enters this index.
CREATE INDEX ix_tasks_delayed_v2 ON tasks (available_at)
    WHERE status = 'PENDING' AND deps_pending = 0 AND available_at > updated_at;
-- Also finds RUNNING rows for the reaper (a handful): a separate index on
-- them would be written twice per task for nothing. (Version 7 replaces this
-- index and ix_tasks_finished with ones that hold no DONE row.)
CREATE INDEX ix_tasks_status ON tasks (status, id);
CREATE INDEX ix_tasks_skill ON tasks (skill, id);
CREATE INDEX ix_tasks_worker_v2 ON tasks (worker, id) WHERE worker IS NOT NULL;
CREATE INDEX ix_tasks_assigned ON tasks (assigned_to, id) WHERE assigned_to IS NOT NULL;
CREATE INDEX ix_tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
-- Ordinary tasks have no key and pay nothing for this index.
CREATE UNIQUE INDEX ux_tasks_idempotency ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Tasks per (status, skill), kept in the same transaction as the change:
-- counts(), counts_by_skill() and the dashboard's filter totals read a few
-- rows instead of scanning an index of every task. Updates and deletes are
-- counted by triggers; inserts by the code that inserts (`_COUNT_NEW` in
-- tasks.py), once per (status, skill) and transaction, so a bulk enqueue does
-- not run an upsert per row.
CREATE TABLE task_counts (
    status TEXT NOT NULL,
    skill  TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (status, skill)
) WITHOUT ROWID;
CREATE TRIGGER tr_tasks_count_update AFTER UPDATE OF status, skill ON tasks
    WHEN OLD.status != NEW.status OR OLD.skill != NEW.skill BEGIN
    UPDATE task_counts SET n = n - 1 WHERE status = OLD.status AND skill = OLD.skill;
    INSERT INTO task_counts (status, skill, n) VALUES (NEW.status, NEW.skill, 1)
        ON CONFLICT (status, skill) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tr_tasks_count_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE status = OLD.status AND skill = OLD.skill;
END;

-- Append-only: one row per FINISHED attempt, written when it ends; the running
-- attempt lives in the tasks row (worker, lease_token, started_at).
CREATE TABLE task_attempts (
    id          INTEGER PRIMARY KEY,
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
-- No index on ended_at: rows are appended as attempts end, so a time window
-- is an id window (`_id_range`).

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
    id      INTEGER PRIMARY KEY,
    ts      REAL NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    task_id INTEGER,
    agent   TEXT,
    detail  TEXT
);
-- Task-lifecycle events (task_id set) are most of the log and are written on
-- the queue's hot path, so they enter only the primary key and the task
-- index. The other indexes are partial: agent/system events only. Time
-- bounds become id bounds (ids grow with time; see `_event_id_range`).
CREATE INDEX ix_events_task ON events (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX ix_events_agent ON events (agent, id) WHERE agent IS NOT NULL AND task_id IS NULL;
CREATE INDEX ix_events_action ON events (action, agent, id) WHERE task_id IS NULL;

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

# Version 4 takes fewer b-trees off the queue's write path (see _TASKS); for
# a database created before it, these are the objects it no longer has.
_LEANER_QUEUE_WRITES = """
DROP INDEX IF EXISTS ix_tasks_running;
DROP TRIGGER IF EXISTS tr_tasks_count_insert;
"""

# Version 5: rows that serialise a decision taken from sums over many rows
# (budget reservations). The deciding transaction first upserts its guard row;
# on a backend with many writers (PostgreSQL, READ COMMITTED) that row stays
# locked until it commits, so the next decision reads what it wrote.
_GUARDS = """
CREATE TABLE guards (
    name     TEXT PRIMARY KEY,
    taken_at REAL NOT NULL
);
"""

# Version 6: a crash-ended attempt (the worker died or its lease ran out)
# says whether it implicates its task (see tasks.py, `_crash_suspect`): the
# poison-pill rule counts these, not every crash.
_CRASH_SUSPECTS = """
ALTER TABLE task_attempts ADD COLUMN suspect INTEGER NOT NULL DEFAULT 0;
"""

# Version 7: no index entry is written for a task becoming DONE, the bulk of
# the queue's history (measured by scripts/bench_queue_costs.py).
# * ix_tasks_not_done replaces ix_tasks_status: every status but DONE. A DONE
#   filter scans the table newest-first by id, which finds DONE rows at once
#   where they are the bulk. Its statuses sort descending, so RUNNING rows sit
#   right before the PENDING rows a claim takes next: claim and complete
#   change one leaf page of it, not three. SQLite uses a partial index only
#   for a query with its very term, so filters name statuses as literals,
#   one `status = 'X'` per query (task_reads.py, `_filter_sql`).
# * ix_tasks_ended replaces ix_tasks_finished for FAILED and CANCELLED tasks
#   (covering: a count per status never reads the table); DONE tasks in a
#   time window are their 'done' attempts, whose ids follow time
#   (monitoring.finished_series, reports.task_outcomes_by_day).
_NO_DONE_INDEX_ENTRIES = """
DROP INDEX IF EXISTS ix_tasks_status;
DROP INDEX IF EXISTS ix_tasks_finished;
CREATE INDEX IF NOT EXISTS ix_tasks_not_done ON tasks (status DESC, id)
    WHERE status = 'WAITING_HUMAN' OR status = 'RUNNING' OR status = 'PENDING'
       OR status = 'FAILED' OR status = 'CANCELLED';
CREATE INDEX IF NOT EXISTS ix_tasks_ended ON tasks (finished_at, status)
    WHERE status = 'FAILED' OR status = 'CANCELLED';
"""

# Version 8: a fleet on a shared PostgreSQL spans several hosts; attempts,
# alerts and hardware samples say which host they come from (NULL: written
# before version 8, on the one host there was).
_HOSTS = """
ALTER TABLE task_attempts ADD COLUMN host TEXT;
ALTER TABLE alerts ADD COLUMN host TEXT;
ALTER TABLE hw_samples ADD COLUMN host TEXT;
"""

# Version 9: task outcome totals for counters that never go backwards
# (/metrics fleet_tasks_completed_total, fleet_tasks_failed_total). A task in
# DONE or FAILED is already counted in task_counts; this table keeps, per
# skill, the ones that have LEFT that status since (retried, or their row
# deleted when history is pruned). completed = DONE now + left DONE, and
# likewise for failed: each entry into DONE/FAILED counts once, for good. The
# hot path (a task becoming DONE) writes nothing more; only rare departures do.
_OUTCOME_TOTALS = """
CREATE TABLE task_outcomes_left (
    skill     TEXT    NOT NULL PRIMARY KEY,
    completed INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TRIGGER tr_tasks_outcome_left AFTER UPDATE OF status, skill ON tasks
    WHEN OLD.status IN ('DONE', 'FAILED') AND (OLD.status != NEW.status OR OLD.skill != NEW.skill) BEGIN
    INSERT INTO task_outcomes_left (skill, completed, failed)
        VALUES (OLD.skill, OLD.status = 'DONE', OLD.status = 'FAILED')
        ON CONFLICT (skill) DO UPDATE SET completed = completed + excluded.completed,
                                          failed = failed + excluded.failed;
END;
CREATE TRIGGER tr_tasks_outcome_delete AFTER DELETE ON tasks
    WHEN OLD.status IN ('DONE', 'FAILED') BEGIN
    INSERT INTO task_outcomes_left (skill, completed, failed)
        VALUES (OLD.skill, OLD.status = 'DONE', OLD.status = 'FAILED')
        ON CONFLICT (skill) DO UPDATE SET completed = completed + excluded.completed,
                                          failed = failed + excluded.failed;
END;
"""

# Version 10: code-factory workflows (fleet/workflow). A workflow row holds
# its phase, its step (how many phases have finished: the compare-and-set
# that makes a re-run phase after a crash a no-op), its JSON state and its
# spend; workflow_steps keeps each finished phase (one row per step, unique),
# and workflow_lessons what the learner extracted, searchable (FTS5).
_WORKFLOWS = """
CREATE TABLE workflows (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    repo             TEXT    NOT NULL,
    goal             TEXT    NOT NULL,
    base             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('RUNNING','DONE','FAILED','CANCELLED','REJECTED')),
    phase            TEXT    NOT NULL,
    step             INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL DEFAULT '{}',
    settings         TEXT    NOT NULL DEFAULT '{}',
    budget_usd       REAL,
    spent_usd        REAL    NOT NULL DEFAULT 0,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    task_id          INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    created_by       TEXT,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    finished_at      REAL
);
CREATE INDEX ix_workflows_status ON workflows (status, id);
CREATE TABLE workflow_steps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id   INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    step          INTEGER NOT NULL,
    phase         TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    task_id       INTEGER,
    detail        TEXT,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL    NOT NULL DEFAULT 0,
    model_calls   INTEGER NOT NULL DEFAULT 0,
    started_at    REAL,
    finished_at   REAL    NOT NULL,
    UNIQUE (workflow_id, step)
);
CREATE TABLE workflow_lessons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repo        TEXT    NOT NULL,
    workflow_id INTEGER,
    text        TEXT    NOT NULL,
    created_at  REAL    NOT NULL
);
CREATE INDEX ix_workflow_lessons_repo ON workflow_lessons (repo, id);
CREATE VIRTUAL TABLE workflow_lessons_fts USING fts5(text, content='workflow_lessons', content_rowid='id',
    tokenize='porter unicode61');
CREATE TRIGGER tr_workflow_lessons_ai AFTER INSERT ON workflow_lessons BEGIN
    INSERT INTO workflow_lessons_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER tr_workflow_lessons_ad AFTER DELETE ON workflow_lessons BEGIN
    INSERT INTO workflow_lessons_fts (workflow_lessons_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""

MIGRATIONS: list[str] = [
    _TASKS + _FLEET_STATE,
    _HW_SAMPLES,
    _MODEL_USAGE,
    _LEANER_QUEUE_WRITES,
    _GUARDS,
    _CRASH_SUSPECTS,
    _NO_DONE_INDEX_ENTRIES,
    _HOSTS,
    _OUTCOME_TOTALS,
    _WORKFLOWS,
]

SCHEMA_VERSION = len(MIGRATIONS)
