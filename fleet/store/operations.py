"""Operator tools on the store, all kept in the one audit log (events): the
audit trail (every operator action, filtered and paged), debug reports and
their resolutions (open -> resolved), and a GDPR erase of one agent's data
(messages, notes and events it wrote; usage rows kept, pseudonymised).
"""

from __future__ import annotations

from .errors import InvalidInput, InvalidTransition, NotFound
from .task_model import check_name
from .values import dumps, loads, now

# Event actions an operator's request leaves, whatever the front end (CLI,
# dashboard, launcher): the audit trail shows exactly these.
OPERATOR_ACTIONS = (
    "cancel_requested", "cancelled", "retry", "answer",          # tasks (answer: approvals)
    "flag",                                                      # fleet-wide pause/resume and other flags
    "worker_pause", "worker_resume",                             # one worker
    "control_start", "control_stop", "control_restart",          # the supervisor, asked by an operator
    "alert_ack",
    "config_edit",                                               # fleet.toml changed through a Fleet tool
    "secret_set", "secret_delete", "secret_rotate",              # names only, never values
    "gdpr_erase", "debug_report", "resolution",
)
# Who an actor is, by how it is spelt: the CLI records "operator", the
# dashboard "dashboard:<how signed in>", the launcher "launcher[:...]".
_VIA = (("dashboard", "dashboard"), ("launcher", "launcher"), ("operator", "cli"), ("cli", "cli"))

_REPORT_COLUMNS = """e.id, e.ts, e.actor, e.detail, r.ts AS resolved_at, r.actor AS resolved_by,
                     r.detail AS resolution"""
_REPORT_JOIN = """FROM events e LEFT JOIN events r
                  ON r.action = 'resolution' AND r.task_id IS NULL
                 AND json_extract(r.detail, '$.report') = CAST(e.id AS TEXT)
                  WHERE e.action = 'debug_report' AND e.task_id IS NULL"""
REPORT_STATES = ("open", "resolved")


def via(actor: str) -> str:
    """The front end an action came through: cli, dashboard, launcher, or
    (for the fleet's own processes) the actor itself."""
    for prefix, name in _VIA:
        if actor == prefix or actor.startswith(prefix + ":"):
            return name
    return actor


def _check_limit(limit) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be a whole number from 1 to 1000, got {limit!r}")


def _report(row) -> dict:
    detail = loads(row["detail"]) or {}
    resolution = loads(row["resolution"]) or {}
    return {
        "id": row["id"], "created_at": row["ts"], "created_by": row["actor"],
        "path": detail.get("path"), "description": detail.get("description"),
        "status": "resolved" if row["resolved_at"] is not None else "open",
        "resolved_at": row["resolved_at"], "resolved_by": row["resolved_by"],
        "note": resolution.get("note"), "fix_commit": resolution.get("fix_commit"),
        "regression_test": resolution.get("regression_test"),
    }


class OperationsMixin:
    """Audit, debug reports and GDPR erase; mixed into both stores."""

    # -- the audit trail ---------------------------------------------------
    def audit_trail(self, *, actor: str | None = None, action: str | None = None, since: float | None = None,
                    until: float | None = None, before_id: int | None = None, limit: int = 100) -> dict:
        if action is not None and action not in OPERATOR_ACTIONS:
            raise InvalidInput(f"{action!r} is not an operator action; use one of {', '.join(OPERATOR_ACTIONS)}")
        _check_limit(limit)
        if before_id is not None and (isinstance(before_id, bool) or not isinstance(before_id, int)):
            raise InvalidInput(f"before_id must be an event id (a whole number), got {before_id!r}")
        actions = (action,) if action is not None else OPERATOR_ACTIONS
        clauses = [f"action IN ({','.join('?' * len(actions))})",
                   # a worker acknowledging a cancel finishes the operator's request: not an action of its own
                   "NOT (action = 'cancelled' AND task_id IS NOT NULL AND "
                   "actor = (SELECT IFNULL(t.worker, '') FROM tasks t WHERE t.id = events.task_id))"]
        params: list = list(actions)
        if actor is not None:
            # "dashboard" matches every dashboard:<how> actor, "operator" only itself
            clauses.append("(actor = ? OR substr(actor, 1, ?) = ?)")
            params += [actor, len(actor) + 1, actor + ":"]
        if since is not None or until is not None:
            lo, hi = self._event_id_range(since, until)
            clauses.append("id BETWEEN ? AND ?")
            params += [lo, hi]
            if since is not None:
                clauses.append("ts >= ?")
                params.append(since)
            if until is not None:
                clauses.append("ts < ?")
                params.append(until)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        rows = self._conn().execute(
            f"SELECT * FROM events WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",  # nosec B608
            (*params, limit + 1),
        ).fetchall()
        items = [{"id": r["id"], "ts": r["ts"], "actor": r["actor"], "via": via(r["actor"]), "action": r["action"],
                  "task_id": r["task_id"], "agent": r["agent"], "detail": loads(r["detail"])} for r in rows[:limit]]
        return {"items": items, "next_before_id": items[-1]["id"] if len(rows) > limit else None}

    # -- debug reports and their resolutions ---------------------------------
    def record_debug_report(self, path: str, *, description: str | None = None, by: str = "operator") -> dict:
        check_name(by, "by (who does this)")
        if not isinstance(path, str) or not path.strip():
            raise InvalidInput("a debug report needs the path of its file")
        detail = dumps({"path": path, "description": description}, "debug report", self.max_payload_bytes)
        with self._write() as conn:
            rid = conn.execute(
                "INSERT INTO events (ts, actor, action, task_id, agent, detail) "
                "VALUES (?, ?, 'debug_report', NULL, NULL, ?) RETURNING id", (now(), by, detail)).fetchone()[0]
        return self.debug_report(rid)

    def debug_report(self, report_id: int) -> dict:
        row = self._conn().execute(f"SELECT {_REPORT_COLUMNS} {_REPORT_JOIN} AND e.id = ?",  # nosec B608
                                   (report_id,)).fetchone()
        if row is None:
            raise NotFound(f"debug report {report_id} does not exist; `lead_client.py resolutions list` shows them")
        return _report(row)

    def debug_reports(self, *, status: str | None = None, limit: int = 100) -> list[dict]:
        if status is not None and status not in REPORT_STATES:
            raise InvalidInput(f"report status must be one of {', '.join(REPORT_STATES)}, got {status!r}")
        _check_limit(limit)
        where = {"open": " AND r.id IS NULL", "resolved": " AND r.id IS NOT NULL", None: ""}[status]
        rows = self._conn().execute(
            f"SELECT {_REPORT_COLUMNS} {_REPORT_JOIN}{where} ORDER BY e.id DESC LIMIT ?", (limit,)  # nosec B608
        ).fetchall()
        return [_report(r) for r in rows]

    def resolve_debug_report(self, report_id: int, note: str, *, by: str = "operator",
                             fix_commit: str | None = None, regression_test: str | None = None) -> dict:
        check_name(by, "by (who does this)")
        if not isinstance(note, str) or not note.strip():
            raise InvalidInput("a resolution needs a note saying what was done (--note)")
        detail = dumps({"report": str(report_id), "note": note, "fix_commit": fix_commit,
                        "regression_test": regression_test}, "resolution", self.max_payload_bytes)
        ts = now()
        with self._write() as conn:
            # One resolution per report, with many writers at once: the guard
            # row's lock, held to commit, makes the check-then-insert one at a time.
            conn.execute("INSERT INTO guards (name, taken_at) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET taken_at = excluded.taken_at",
                         (f"debug_report:{report_id}", ts))
            row = conn.execute(f"SELECT {_REPORT_COLUMNS} {_REPORT_JOIN} AND e.id = ?",  # nosec B608
                               (report_id,)).fetchone()
            if row is None:
                raise NotFound(f"debug report {report_id} does not exist; "
                               "`lead_client.py resolutions list` shows them")
            if row["resolved_at"] is not None:
                raise InvalidTransition(f"debug report {report_id} was already resolved by {row['resolved_by']}")
            conn.execute("INSERT INTO events (ts, actor, action, task_id, agent, detail) "
                         "VALUES (?, ?, 'resolution', NULL, NULL, ?)", (ts, by, detail))
        return self.debug_report(report_id)

    # -- GDPR erase of one agent -------------------------------------------
    def agent_footprint(self, agent: str) -> dict:
        check_name(agent, "agent")
        with self._read() as conn:
            def count(sql: str, *params) -> int:
                return conn.execute(sql, params).fetchone()[0]

            return {
                "messages": count("SELECT COUNT(*) FROM messages WHERE sender = ?", agent),
                "notes": count("SELECT COUNT(*) FROM notes WHERE author = ?", agent),
                "events": count("SELECT COUNT(*) FROM events WHERE actor = ?", agent),
                "events_naming": count("SELECT COUNT(*) FROM events WHERE agent = ? AND actor != ?", agent, agent),
                "usage_rows": count("SELECT COUNT(*) FROM model_usage WHERE agent = ?", agent),
            }

    def erase_agent_data(self, agent: str, *, pseudonym: str, by: str = "operator",
                         extra_counts: dict | None = None) -> dict:
        check_name(agent, "agent")
        check_name(by, "by (who does this)")
        if not isinstance(pseudonym, str) or not pseudonym.strip() or pseudonym == agent:
            raise InvalidInput("the pseudonym must be a non-empty text other than the agent's name")
        for key, value in (extra_counts or {}).items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"extra count {key!r} must be a whole number, got {value!r}")
        ts = now()
        with self._write() as conn:
            # The record of the erase is written first, so it takes an id above
            # every event deleted below (SQLite's ids are max + 1: a stream that
            # saw a deleted id must not meet it again). It holds counts and the
            # pseudonym, never the name or any content.
            eid = conn.execute(
                "INSERT INTO events (ts, actor, action, task_id, agent, detail) "
                "VALUES (?, ?, 'gdpr_erase', NULL, ?, NULL) RETURNING id", (ts, by, pseudonym)).fetchone()[0]
            counts = {
                "messages": conn.execute("DELETE FROM messages WHERE sender = ?", (agent,)).rowcount,
                "notes": conn.execute("DELETE FROM notes WHERE author = ?", (agent,)).rowcount,
                "events": conn.execute("DELETE FROM events WHERE actor = ?", (agent,)).rowcount,
                "events_naming": conn.execute("UPDATE events SET agent = ? WHERE agent = ?",
                                              (pseudonym, agent)).rowcount,
                "usage_rows": conn.execute("UPDATE model_usage SET agent = ? WHERE agent = ?",
                                           (pseudonym, agent)).rowcount,
                **(extra_counts or {}),
            }
            conn.execute("UPDATE events SET detail = ? WHERE id = ?",
                         (dumps({"pseudonym": pseudonym, "counts": counts}, "erase record"), eid))
        return {"pseudonym": pseudonym, "counts": counts, "audit_event_id": eid}
