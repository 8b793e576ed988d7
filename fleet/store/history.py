"""What happened to tasks, as a person reads it: one task's history and the
fleet's activity feed, merged from the task rows (creation), the attempts
(each claim and how it ended) and the audit events (operator actions and
anomalies). The queue's hot path writes no event for enqueue, claim or
complete: those facts are already in the task row and its attempt rows.
"""

from __future__ import annotations

from .values import loads

# How a finished attempt's outcome reads in a history; the outcomes that an
# event also records (requeue, retry_scheduled, fail, release, cancelled,
# ask_human) are shown once, as that event, so only these are derived.
_DERIVED_OUTCOME = {"done": "complete"}
# Task rows looked at (newest first) to find the newest creations for the feed.
_CREATION_WINDOW = 2000
# Actions the feed derives rather than reads from events.
DERIVED_ACTIONS = ("enqueue", "enqueue_many", "claim", "complete")


def _entry(ts, actor, action, task_id, agent, detail, source, event_id=None) -> dict:
    return {"id": event_id, "ts": ts, "actor": actor or "unknown", "action": action, "task_id": task_id,
            "agent": agent, "detail": detail, "source": source}


def _attempt_entries(a) -> list[dict]:
    """The claim of an attempt and, for a successful one, its completion."""
    out = [_entry(a["started_at"], a["worker"], "claim", a["task_id"], a["worker"],
                  {"attempt": a["attempt_no"]}, "attempt")]
    action = _DERIVED_OUTCOME.get(a["outcome"])
    if action is not None and a["ended_at"] is not None:
        out.append(_entry(a["ended_at"], a["worker"], action, a["task_id"], a["worker"],
                          {"attempt": a["attempt_no"]}, "attempt"))
    return out


def _event_entry(r) -> dict:
    return _entry(r["ts"], r["actor"], r["action"], r["task_id"], r["agent"], loads(r["detail"]), "event", r["id"])


def _creation_entries(rows) -> list[dict]:
    """Task creations (id, created_at, created_by, skill, priority; in id
    order) as entries: a run of tasks written at one instant by one actor (a
    bulk enqueue) is one `enqueue_many` entry, not thousands."""
    out: list[dict] = []
    run: list = []
    for row in [*rows, None]:
        if run and (row is None or (row[1], row[2]) != (run[0][1], run[0][2])):
            first, ts, actor = run[0][0], run[0][1], run[0][2]
            if len(run) == 1:
                out.append(_entry(ts, actor, "enqueue", first, None, {"skill": run[0][3], "priority": run[0][4]},
                                  "task"))
            else:
                skills: dict[str, int] = {}
                for r in run:
                    skills[r[3]] = skills.get(r[3], 0) + 1
                out.append(_entry(ts, actor, "enqueue_many", None, None,
                                  {"count": len(run), "first_id": first, "last_id": run[-1][0], "skills": skills},
                                  "task"))
            run = []
        if row is not None:
            run.append(row)
    return out


class HistoryMixin:
    """Merged histories; mixed into Store. Nothing here writes."""

    def task_history(self, task_id: int) -> list[dict]:
        """Everything that happened to one task, oldest first: its creation,
        each attempt's claim and successful completion, and its events."""
        task = self.get(task_id)
        if task is None:
            return []
        out = [_entry(task.created_at, task.created_by or "client", "enqueue", task.id, None,
                      {"skill": task.skill, "priority": task.priority}, "task")]
        with self._read() as conn:
            attempts = conn.execute(
                "SELECT task_id, attempt_no, worker, started_at, ended_at, outcome FROM task_attempts "
                "WHERE task_id = ? ORDER BY id", (task_id,)).fetchall()
            events = conn.execute("SELECT * FROM events WHERE task_id = ? ORDER BY id", (task_id,)).fetchall()
        for a in attempts:
            out += _attempt_entries(a)
        if task.status == "RUNNING" and task.started_at is not None:
            out.append(_entry(task.started_at, task.worker, "claim", task.id, task.worker,
                              {"attempt": task.attempts}, "attempt"))
        out += [_event_entry(r) for r in events]
        out.sort(key=lambda e: (e["ts"], e["source"] != "task"))
        return out

    def activity(self, limit: int = 100, *, task_id: int | None = None, agent: str | None = None,
                 action: str | None = None) -> list[dict]:
        """The fleet's newest activity, newest first, at most `limit` entries:
        audit events merged with task creations (a batch written at once is
        one `enqueue_many` entry), claims and completions."""
        if task_id is not None:
            entries = [e for e in reversed(self.task_history(task_id))
                       if (agent is None or e["agent"] == agent) and (action is None or e["action"] == action)]
            return entries[:limit]
        entries: list[dict] = []
        if action is None or action not in DERIVED_ACTIONS:
            entries += self.recent_events(limit, agent=agent, action=action)
            for e in entries:
                e["source"] = "event"
        if action is None or action in DERIVED_ACTIONS:
            with self._read() as conn:
                if action in (None, "claim", "complete"):
                    entries += self._recent_attempt_entries(conn, limit, agent)
                if agent is None and action in (None, "enqueue", "enqueue_many"):
                    entries += self._recent_creations(conn, limit)
            if action is not None:
                entries = [e for e in entries if e["action"] == action]
        entries.sort(key=lambda e: (e["ts"], e["id"] or 0), reverse=True)
        return entries[:limit]

    def _recent_attempt_entries(self, conn, limit: int, agent: str | None) -> list[dict]:
        where, params = ("WHERE worker = ?", [agent]) if agent is not None else ("", [])
        finished = conn.execute(
            "SELECT task_id, attempt_no, worker, started_at, ended_at, outcome FROM task_attempts "  # nosec B608
            f"{where} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        running = conn.execute(
            "SELECT id AS task_id, attempts AS attempt_no, worker, started_at, NULL AS ended_at, "
            "'running' AS outcome FROM tasks WHERE status = 'RUNNING'"
            + (" AND worker = ?" if agent is not None else "") + " ORDER BY id DESC LIMIT ?",
            (*params, limit)).fetchall()
        out: list[dict] = []
        for a in [*finished, *running]:
            out += _attempt_entries(a)
        return out

    def _recent_creations(self, conn, limit: int) -> list[dict]:
        rows = conn.execute(
            """SELECT id, created_at, IFNULL(created_by, 'client'), skill, priority FROM
               (SELECT id, created_at, created_by, skill, priority FROM tasks ORDER BY id DESC LIMIT ?) AS recent
               ORDER BY id""", (_CREATION_WINDOW,)).fetchall()
        return _creation_entries(rows)[-limit:]

    def task_changes(self, after_attempt_id: int, claimed_after: float,
                     after_task_id: int) -> tuple[list[dict], int, float, int]:
        """Task creations, claims and successful completions since a cursor,
        for live views: (entries oldest first, then the three cursors to pass
        next time). A view opened now starts from `task_change_cursor()`."""
        with self._read() as conn:
            created = conn.execute(
                "SELECT id, created_at, IFNULL(created_by, 'client'), skill, priority FROM tasks "
                "WHERE id > ? ORDER BY id LIMIT 5000", (after_task_id,)).fetchall()
            finished = conn.execute(
                "SELECT id, task_id, attempt_no, worker, started_at, ended_at, outcome FROM task_attempts "
                "WHERE id > ? ORDER BY id LIMIT 1000", (after_attempt_id,)).fetchall()
            running = conn.execute(
                "SELECT id AS task_id, attempts AS attempt_no, worker, started_at, NULL AS ended_at, "
                "'running' AS outcome FROM tasks WHERE status = 'RUNNING' AND started_at > ? "
                "ORDER BY started_at LIMIT 1000", (claimed_after,)).fetchall()
        out = _creation_entries(created)
        if created:
            after_task_id = created[-1][0]
        for a in finished:
            entries = _attempt_entries(a)
            # the claim of a finished attempt was reported while it ran, unless it ran between polls
            out += entries[1:] if a["started_at"] <= claimed_after else entries
            after_attempt_id = a["id"]
        for a in running:
            out += _attempt_entries(a)
            claimed_after = max(claimed_after, a["started_at"])
        out.sort(key=lambda e: e["ts"])
        return out, after_attempt_id, claimed_after, after_task_id

    def task_change_cursor(self) -> tuple[int, float, int]:
        """Where `task_changes` starts for a view opened now."""
        with self._read() as conn:
            last = conn.execute("SELECT IFNULL(MAX(id), 0) FROM task_attempts").fetchone()[0]
            started = conn.execute(
                "SELECT IFNULL(MAX(started_at), 0) FROM tasks WHERE status = 'RUNNING'").fetchone()[0]
            task = conn.execute("SELECT IFNULL(MAX(id), 0) FROM tasks").fetchone()[0]
        return last, started, task
