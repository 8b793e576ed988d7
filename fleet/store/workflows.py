"""Code-factory workflows in the store: the workflow row (phase, step, JSON
state, spend), its finished steps, and the lessons learned per repository.
A phase finishes with one compare-and-set on the step (`advance_workflow`),
which also enqueues the next phase's task in the same transaction.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidInput, InvalidTransition, NotFound
from .values import dumps, loads, now

WORKFLOW_STATUSES = ("RUNNING", "DONE", "FAILED", "CANCELLED", "REJECTED")
WORKFLOW_TERMINAL = ("DONE", "FAILED", "CANCELLED", "REJECTED")
_STATE_LIMIT = 8 << 20  # a workflow's state holds diffs and gate outputs: bounded, but not by max_payload_bytes
_WORD = re.compile(r"[A-Za-z0-9_]{2,}")
# Words a search ignores on both backends (PostgreSQL's english configuration
# drops these itself; FTS5 would match every lesson on them).
_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its not of on or that the this to was were will with "
    "fix make add use should must".split())


def _dict(r) -> dict:
    d = {k: r[k] for k in r.keys()}
    for key in ("state", "settings", "detail"):
        if key in d:
            d[key] = loads(d[key]) if d[key] is not None else None
    return d


def _text(value: Any, what: str, *, limit: int = 10000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value)} characters, over the limit of {limit}")
    return value


class WorkflowMixin:
    """Workflow rows, steps and lessons (see StoreContract for each method)."""

    # SQLite's FTS5 search; the PostgreSQL dialect supplies its own.
    _lesson_search_sql = (
        "SELECT l.* FROM workflow_lessons_fts f JOIN workflow_lessons l ON l.id = f.rowid "
        "WHERE workflow_lessons_fts MATCH ? AND l.repo = ? ORDER BY f.rank, l.id DESC LIMIT ?")

    @staticmethod
    def _lesson_query(words: list[str]) -> str:
        return " OR ".join(f'"{w}"' for w in words)

    def _enqueue_in(self, conn, spec: dict, ts: float) -> int:
        p = self._prepare(spec, ts)  # (tasks.py) validated as enqueue validates
        existing = self._by_key(conn, p["idempotency_key"])
        task = existing if existing is not None else self._insert_task(conn, p, ts)
        return task["id"] if existing is not None else task.id

    def create_workflow(self, repo: str, goal: str, *, base: str, settings: dict | None = None,
                        state: dict | None = None, budget_usd: float | None = None, phase: str = "plan",
                        first_task: dict | None = None, created_by: str = "operator") -> dict:
        _text(repo, "repo", limit=4096)
        _text(goal, "goal")
        _text(base, "base", limit=512)
        if budget_usd is not None and (not isinstance(budget_usd, (int, float)) or isinstance(budget_usd, bool)
                                       or budget_usd <= 0):
            raise InvalidInput(f"budget_usd must be a positive number, got {budget_usd!r}")
        settings_text = dumps(settings or {}, "workflow settings", _STATE_LIMIT)
        state_text = dumps(state or {}, "workflow state", _STATE_LIMIT)
        ts = now()
        with self._write() as conn:
            wid = conn.execute(
                """INSERT INTO workflows (repo, goal, base, status, phase, step, state, settings, budget_usd,
                       created_by, created_at, updated_at) VALUES (?,?,?,'RUNNING',?,0,?,?,?,?,?,?) RETURNING id""",
                (repo, goal, base, phase, state_text, settings_text, budget_usd, created_by, ts, ts),
            ).fetchone()[0]
            task_id = None
            if first_task is not None:
                spec = dict(first_task)
                spec["payload"] = {**spec.get("payload", {}), "workflow_id": wid, "step": 0}
                spec.setdefault("idempotency_key", f"workflow-{wid}-step-0")
                task_id = self._enqueue_in(conn, spec, ts)
                conn.execute("UPDATE workflows SET task_id = ? WHERE id = ?", (task_id, wid))
            self._event(conn, created_by, "workflow_start", task_id=task_id,
                        detail={"workflow": wid, "repo": repo, "goal": goal[:200]}, ts=ts)
            row = conn.execute("SELECT * FROM workflows WHERE id = ?", (wid,)).fetchone()
        self.notify()
        return _dict(row)

    def get_workflow(self, workflow_id: int) -> dict:
        row = self._conn().execute("SELECT * FROM workflows WHERE id = ?", (int(workflow_id),)).fetchone()
        if row is None:
            raise NotFound(f"workflow {workflow_id} does not exist")
        return _dict(row)

    def list_workflows(self, *, status: str | None = None, limit: int = 100) -> list[dict]:
        if status is not None and status not in WORKFLOW_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(WORKFLOW_STATUSES)}, got {status!r}")
        sql, params = "SELECT * FROM workflows", []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        rows = self._conn().execute(sql + " ORDER BY id DESC LIMIT ?", (*params, int(limit))).fetchall()
        return [_dict(r) for r in rows]

    def workflow_steps(self, workflow_id: int) -> list[dict]:
        rows = self._conn().execute(
            "SELECT * FROM workflow_steps WHERE workflow_id = ? ORDER BY step", (int(workflow_id),)).fetchall()
        return [_dict(r) for r in rows]

    def advance_workflow(self, workflow_id: int, step: int, *, finished: str, outcome: str, phase: str,
                         state: dict | None = None, status: str = "RUNNING", error: str | None = None,
                         usage: dict | None = None, task_id: int | None = None, started_at: float | None = None,
                         detail: Any = None, next_task: dict | None = None) -> dict:
        if status not in WORKFLOW_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(WORKFLOW_STATUSES)}, got {status!r}")
        usage = usage or {}
        cost = float(usage.get("cost_usd", 0.0))
        tin, tout = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        calls = int(usage.get("model_calls", 0))
        state_text = None if state is None else dumps(state, "workflow state", _STATE_LIMIT)
        detail_text = None if detail is None else dumps(detail, "step detail", _STATE_LIMIT)
        ts = now()
        with self._write() as conn:
            row = conn.execute(
                """UPDATE workflows SET step = step + 1, phase = ?, state = COALESCE(?, state), status = ?,
                       error = COALESCE(?, error), spent_usd = spent_usd + ?, input_tokens = input_tokens + ?,
                       output_tokens = output_tokens + ?, updated_at = ?,
                       finished_at = CASE WHEN ? = 'RUNNING' THEN NULL ELSE ? END
                   WHERE id = ? AND step = ? AND status = 'RUNNING' RETURNING *""",
                (phase, state_text, status, error, cost, tin, tout, ts, status, ts, int(workflow_id), int(step)),
            ).fetchone()
            if row is None:
                current = conn.execute("SELECT step, status FROM workflows WHERE id = ?",
                                       (int(workflow_id),)).fetchone()
                if current is None:
                    raise NotFound(f"workflow {workflow_id} does not exist")
                raise InvalidTransition(f"workflow {workflow_id} is at step {current[0]} ({current[1]}), "
                                        f"not step {step}: that phase already finished")
            conn.execute(
                """INSERT INTO workflow_steps (workflow_id, step, phase, outcome, task_id, detail, input_tokens,
                       output_tokens, cost_usd, model_calls, started_at, finished_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
                (int(workflow_id), int(step), finished, outcome, task_id, detail_text, tin, tout, cost, calls,
                 started_at, ts))
            next_id = None
            if next_task is not None and status == "RUNNING":
                spec = dict(next_task)
                spec["payload"] = {**spec.get("payload", {}), "workflow_id": int(workflow_id), "step": int(step) + 1}
                spec.setdefault("idempotency_key", f"workflow-{int(workflow_id)}-step-{int(step) + 1}")
                next_id = self._enqueue_in(conn, spec, ts)
                row = conn.execute("UPDATE workflows SET task_id = ? WHERE id = ? RETURNING *",
                                   (next_id, int(workflow_id))).fetchone()
            if status != "RUNNING":
                self._event(conn, "workflow", f"workflow_{status.lower()}", task_id=task_id,
                            detail={"workflow": int(workflow_id), "error": error}, ts=ts)
        self.notify()
        return _dict(row)

    def request_workflow_cancel(self, workflow_id: int, *, by: str = "operator") -> dict:
        ts = now()
        with self._write() as conn:
            row = conn.execute(
                "UPDATE workflows SET cancel_requested = 1, updated_at = ? WHERE id = ? AND status = 'RUNNING' "
                "RETURNING *", (ts, int(workflow_id))).fetchone()
            if row is None:
                current = conn.execute("SELECT status FROM workflows WHERE id = ?", (int(workflow_id),)).fetchone()
                if current is None:
                    raise NotFound(f"workflow {workflow_id} does not exist")
                raise InvalidTransition(f"workflow {workflow_id} is already {current[0]}; nothing to cancel")
            self._event(conn, by, "workflow_cancel_requested", detail={"workflow": int(workflow_id)}, ts=ts)
        self.notify()
        return _dict(row)

    # -- lessons -----------------------------------------------------------
    def add_lesson(self, repo: str, text: str, *, workflow_id: int | None = None) -> int:
        _text(repo, "repo", limit=4096)
        _text(text, "lesson", limit=2000)
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO workflow_lessons (repo, workflow_id, text, created_at) VALUES (?,?,?,?) RETURNING id",
                (repo, workflow_id, text.strip(), now())).fetchone()[0]

    def lessons(self, *, repo: str | None = None, query: str | None = None, limit: int = 20) -> list[dict]:
        if query is not None:
            if repo is None:
                raise InvalidInput("a lesson search names the repo it searches")
            words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query) if w.lower() not in _STOPWORDS))[:32]
            if not words:
                return []
            rows = self._conn().execute(self._lesson_search_sql,
                                        (self._lesson_query(words), repo, int(limit))).fetchall()
        elif repo is not None:
            rows = self._conn().execute(
                "SELECT * FROM workflow_lessons WHERE repo = ? ORDER BY id DESC LIMIT ?", (repo, int(limit))).fetchall()
        else:
            rows = self._conn().execute(
                "SELECT * FROM workflow_lessons ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall()
        return [{k: r[k] for k in r.keys()} for r in rows]

    def delete_lesson(self, lesson_id: int, *, by: str = "operator") -> None:
        with self._write() as conn:
            row = conn.execute("DELETE FROM workflow_lessons WHERE id = ? RETURNING id", (int(lesson_id),)).fetchone()
            if row is None:
                raise NotFound(f"lesson {lesson_id} does not exist")
            self._event(conn, by, "lesson_deleted", detail={"lesson": int(lesson_id)})
