"""The task queue: enqueue, claim with a fenced lease, finish, retry, reap.

Every state change is one write transaction that also records the attempt and
an audit event, so a crash at any instruction leaves the queue consistent.
Dependents are promoted (or failed) in the same transaction as their parent.
"""

from __future__ import annotations

import dataclasses
import random
import re
import secrets
import socket
from typing import Any, Iterable, Sequence

from .errors import InvalidInput, InvalidTransition, LeaseLost, NotFound
from .schema import TASK_STATUSES, TERMINAL_STATUSES
from .sqlite_base import dumps, loads, now

SKILL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class Task:
    id: int
    skill: str
    payload: dict
    priority: int
    status: str
    assigned_to: str | None
    idempotency_key: str | None
    attempts: int
    max_attempts: int
    deps_pending: int
    available_at: float
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    worker: str | None
    lease_token: str | None
    lease_expires_at: float | None
    cancel_requested: bool
    result: Any
    error: str | None
    error_reason: str | None
    question: Any
    answer: Any
    created_by: str | None

    @property
    def dead_letter(self) -> bool:
        """FAILED with its attempts used up: the dead-letter view."""
        return self.status == "FAILED" and self.attempts >= self.max_attempts

    def to_dict(self, *, include_token: bool = False) -> dict:
        data = dataclasses.asdict(self)
        if not include_token:
            data.pop("lease_token")
        data["dead_letter"] = self.dead_letter
        return data

    @classmethod
    def from_row(cls, row) -> "Task":
        return cls(
            id=row["id"], skill=row["skill"], payload=loads(row["payload"]),
            priority=row["priority"], status=row["status"], assigned_to=row["assigned_to"],
            idempotency_key=row["idempotency_key"], attempts=row["attempts"],
            max_attempts=row["max_attempts"], deps_pending=row["deps_pending"],
            available_at=row["available_at"], created_at=row["created_at"],
            updated_at=row["updated_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], worker=row["worker"],
            lease_token=row["lease_token"], lease_expires_at=row["lease_expires_at"],
            cancel_requested=bool(row["cancel_requested"]), result=loads(row["result"]),
            error=row["error"], error_reason=row["error_reason"],
            question=loads(row["question"]), answer=loads(row["answer"]),
            created_by=row["created_by"],
        )


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[Task]
    total: int
    limit: int
    offset: int

    def to_dict(self) -> dict:
        return {
            "items": [t.to_dict() for t in self.items],
            "total": self.total, "limit": self.limit, "offset": self.offset,
        }


def _actor_host() -> str:
    return socket.gethostname()


class TaskQueueMixin:
    """Task operations; mixed into the Store class with its connection layer."""

    # -- validation ------------------------------------------------------
    def _check_priority(self, priority: Any) -> int:
        if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
            raise InvalidInput(f"priority must be an integer from 1 to 10 (higher runs first), got {priority!r}")
        return priority

    def _check_skill(self, skill: Any) -> str:
        if not isinstance(skill, str) or not SKILL_NAME.match(skill):
            raise InvalidInput(
                f"skill name must be letters, digits and underscores (like 'code_index'), got {skill!r}"
            )
        return skill

    def _backoff_delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(0, attempts - 1)))
        return delay / 2 + random.uniform(0, delay / 2)

    def _prepare(self, spec: dict, ts: float) -> dict:
        unknown = set(spec) - {
            "skill", "payload", "priority", "assigned_to", "max_attempts", "available_at",
            "delay_s", "idempotency_key", "depends_on", "created_by",
        }
        if unknown:
            raise InvalidInput(f"unknown task field(s): {', '.join(sorted(unknown))}")
        skill = self._check_skill(spec.get("skill"))
        payload = spec.get("payload")
        payload = {} if payload is None else payload
        if not isinstance(payload, dict):
            raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
        priority = self._check_priority(spec.get("priority", 5))
        max_attempts = spec.get("max_attempts")
        if max_attempts is None:
            max_attempts = self.default_max_attempts
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidInput(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        available_at = spec.get("available_at")
        delay = spec.get("delay_s")
        if available_at is not None and delay is not None:
            raise InvalidInput("give either available_at or delay_s, not both")
        if delay is not None:
            if not isinstance(delay, (int, float)) or delay < 0:
                raise InvalidInput(f"delay_s must be a number >= 0, got {delay!r}")
            available_at = ts + delay
        if available_at is None:
            available_at = ts
        elif not isinstance(available_at, (int, float)):
            raise InvalidInput(f"available_at must be epoch seconds (UTC), got {available_at!r}")
        key = spec.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidInput("idempotency_key must be a non-empty string")
        assigned = spec.get("assigned_to")
        if assigned is not None and (not isinstance(assigned, str) or not assigned):
            raise InvalidInput("assigned_to must be a worker name")
        deps = spec.get("depends_on") or ()
        if isinstance(deps, (int, str)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in deps):
            raise InvalidInput(f"depends_on must be a list of task ids, got {deps!r}")
        return {
            "skill": skill,
            "payload": dumps(payload, "payload", self.max_payload_bytes),
            "priority": priority, "max_attempts": max_attempts,
            "available_at": float(available_at), "idempotency_key": key,
            "assigned_to": assigned, "depends_on": sorted(set(deps)),
            "created_by": spec.get("created_by"),
        }

    # -- enqueue ---------------------------------------------------------
    def enqueue(self, skill: str, payload: dict | None = None, **options) -> Task:
        """Add one task. An existing idempotency key returns the existing task."""
        return self.enqueue_many([{"skill": skill, "payload": payload, **options}])[0]

    def enqueue_many(self, specs: Sequence[dict]) -> list[Task]:
        """Add several tasks in one transaction; all are written or none."""
        ts = now()
        prepared = [self._prepare(dict(s), ts) for s in specs]  # validate all first
        out: list[Task] = []
        with self._write() as conn:
            for p in prepared:
                if p["idempotency_key"] is not None:
                    row = conn.execute(
                        "SELECT * FROM tasks WHERE idempotency_key = ?", (p["idempotency_key"],)
                    ).fetchone()
                    if row is not None:
                        out.append(Task.from_row(row))
                        continue
                out.append(self._insert_task(conn, p, ts))
        self.notify()
        return out

    def _insert_task(self, conn, p: dict, ts: float) -> Task:
        status, error, reason, pending = "PENDING", None, None, 0
        for parent_id in p["depends_on"]:
            parent = conn.execute("SELECT status FROM tasks WHERE id = ?", (parent_id,)).fetchone()
            if parent is None:
                raise InvalidInput(f"depends_on names task {parent_id}, which does not exist")
            if parent["status"] in ("FAILED", "CANCELLED"):
                status, reason = "FAILED", "dependency_failed"
                error = f"dependency {parent_id} is {parent['status']}"
            elif parent["status"] != "DONE":
                pending += 1
        row = conn.execute(
            """INSERT INTO tasks (skill, payload, priority, status, assigned_to, idempotency_key,
                   max_attempts, deps_pending, available_at, created_at, updated_at,
                   finished_at, error, error_reason, created_by)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING *""",
            (p["skill"], p["payload"], p["priority"], status, p["assigned_to"],
             p["idempotency_key"], p["max_attempts"], pending, p["available_at"], ts, ts,
             ts if status == "FAILED" else None, error, reason, p["created_by"]),
        ).fetchone()
        if p["depends_on"]:
            conn.executemany(
                "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                [(row["id"], d) for d in p["depends_on"]],
            )
        self._event(conn, p["created_by"] or "client", "enqueue", task_id=row["id"],
                    detail={"skill": p["skill"], "priority": p["priority"]}, ts=ts)
        return Task.from_row(row)

    # -- claim and lease -------------------------------------------------
    def claim(self, worker: str, skills: Iterable[str] | None = None, *,
              lease_s: float = 60.0, any_skill: bool = False) -> Task | None:
        """Atomically claim the best claimable task for `worker`.

        Claimable: PENDING, no unfinished dependencies, `available_at` reached,
        and either assigned to this worker by name, or unassigned with a skill
        in `skills` (or any skill when `any_skill`). Highest priority first,
        then lowest id. Returns the claimed row with its lease token, or None.
        """
        skills = list(skills or ())
        if not skills and not any_skill:
            skill_clause, params = "0", []
        elif any_skill:
            skill_clause, params = "1", []
        else:
            skill_clause = "skill IN (%s)" % ",".join("?" * len(skills))
            params = skills
        ts = now()
        token = secrets.token_hex(12)
        with self._write() as conn:
            row = conn.execute(
                f"""UPDATE tasks SET status = 'RUNNING', attempts = attempts + 1,
                       worker = ?, lease_token = ?, lease_expires_at = ?, started_at = ?,
                       updated_at = ?
                    WHERE id = (
                        SELECT id FROM tasks
                        WHERE status = 'PENDING' AND deps_pending = 0 AND available_at <= ?
                          AND (assigned_to = ? OR (assigned_to IS NULL AND {skill_clause}))
                        ORDER BY priority DESC, id LIMIT 1)
                    RETURNING *""",
                (worker, token, ts + lease_s, ts, ts, ts, worker, *params),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                """INSERT INTO task_attempts (task_id, attempt_no, worker, token, started_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (row["id"], row["attempts"], worker, token, ts),
            )
            conn.execute("UPDATE agents SET current_task = ? WHERE name = ?", (row["id"], worker))
            self._event(conn, worker, "claim", task_id=row["id"], agent=worker,
                        detail={"attempt": row["attempts"]}, ts=ts)
        return Task.from_row(row)

    def _owned(self, conn, task_id: int, token: str):
        row = conn.execute(
            "SELECT * FROM tasks WHERE id = ? AND status = 'RUNNING' AND lease_token = ?",
            (task_id, token),
        ).fetchone()
        if row is None:
            raise LeaseLost(
                f"task {task_id}: this lease is no longer valid (the task was reaped, "
                "released, cancelled or finished elsewhere); stop working on it"
            )
        return row

    def renew(self, task_id: int, token: str, lease_s: float = 60.0) -> bool:
        """Extend the lease. Returns True when cancellation was requested."""
        ts = now()
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            conn.execute(
                "UPDATE tasks SET lease_expires_at = ? WHERE id = ?", (ts + lease_s, task_id)
            )
        return bool(row["cancel_requested"])

    def _end_attempt(self, conn, task_id: int, token: str, outcome: str, error: str | None, ts: float):
        conn.execute(
            "UPDATE task_attempts SET ended_at = ?, outcome = ?, error = ? WHERE task_id = ? AND token = ?",
            (ts, outcome, error, task_id, token),
        )

    def _clear_agent_task(self, conn, worker: str | None, task_id: int) -> None:
        if worker:
            conn.execute(
                "UPDATE agents SET current_task = NULL WHERE name = ? AND current_task = ?",
                (worker, task_id),
            )

    def complete(self, task_id: int, token: str, result: Any = None) -> Task:
        """Finish the attempt successfully and promote dependents, atomically."""
        result_text = dumps(result, "result")
        ts = now()
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, task_id, token, "done", None, ts)
            done = conn.execute(
                """UPDATE tasks SET status = 'DONE', result = ?, error = NULL, error_reason = NULL,
                       finished_at = ?, updated_at = ?, lease_token = NULL, lease_expires_at = NULL
                   WHERE id = ? RETURNING *""",
                (result_text, ts, ts, task_id),
            ).fetchone()
            conn.execute(
                """UPDATE tasks SET deps_pending = deps_pending - 1, updated_at = ?
                   WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = ?)
                     AND status = 'PENDING'""",
                (ts, task_id),
            )
            self._clear_agent_task(conn, row["worker"], task_id)
            self._event(conn, row["worker"], "complete", task_id=task_id, agent=row["worker"], ts=ts)
        self.notify()
        return Task.from_row(done)

    def fail(self, task_id: int, token: str, error: str, *, retryable: bool = True,
             reason: str | None = None) -> Task:
        """Record a failed attempt: back to PENDING with backoff, or FAILED."""
        ts = now()
        error = str(error)[:20000]
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, task_id, token, reason or "failed", error, ts)
            task = self._after_failed_attempt(conn, row, error, reason or "error", retryable, ts)
            self._clear_agent_task(conn, row["worker"], task_id)
        self.notify()
        return task

    def _after_failed_attempt(self, conn, row, error: str, reason: str, retryable: bool, ts: float) -> Task:
        task_id = row["id"]
        if row["cancel_requested"]:
            return self._finish_cancelled(conn, row, ts, actor=row["worker"] or "store")
        if retryable and row["attempts"] < row["max_attempts"]:
            new = conn.execute(
                """UPDATE tasks SET status = 'PENDING', available_at = ?, error = ?, error_reason = ?,
                       updated_at = ?, lease_token = NULL, lease_expires_at = NULL
                   WHERE id = ? RETURNING *""",
                (ts + self._backoff_delay(row["attempts"]), error, reason, ts, task_id),
            ).fetchone()
            self._event(conn, row["worker"] or "store", "retry_scheduled", task_id=task_id,
                        agent=row["worker"], detail={"reason": reason, "attempt": row["attempts"]}, ts=ts)
            return Task.from_row(new)
        new = conn.execute(
            """UPDATE tasks SET status = 'FAILED', error = ?, error_reason = ?, finished_at = ?,
                   updated_at = ?, lease_token = NULL, lease_expires_at = NULL
               WHERE id = ? RETURNING *""",
            (error, reason, ts, ts, task_id),
        ).fetchone()
        self._event(conn, row["worker"] or "store", "fail", task_id=task_id, agent=row["worker"],
                    detail={"reason": reason, "attempts": row["attempts"]}, ts=ts)
        self._fail_dependents(conn, task_id, f"dependency {task_id} failed: {error[:500]}", ts)
        return Task.from_row(new)

    def _fail_dependents(self, conn, parent_id: int, error: str, ts: float) -> None:
        """Fail every not-yet-finished descendant of a permanently failed task."""
        frontier = [parent_id]
        while frontier:
            current = frontier.pop()
            children = conn.execute(
                """UPDATE tasks SET status = 'FAILED', error = ?, error_reason = 'dependency_failed',
                       finished_at = ?, updated_at = ?
                   WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = ?)
                     AND status IN ('PENDING', 'WAITING_HUMAN') RETURNING id""",
                (error, ts, ts, current),
            ).fetchall()
            for child in children:
                self._event(conn, "store", "fail", task_id=child["id"],
                            detail={"reason": "dependency_failed", "parent": current}, ts=ts)
                frontier.append(child["id"])

    def release(self, task_id: int, token: str) -> Task:
        """Give the task back (graceful stop) without counting the attempt."""
        ts = now()
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, task_id, token, "released", None, ts)
            new = conn.execute(
                """UPDATE tasks SET status = CASE WHEN cancel_requested THEN 'CANCELLED' ELSE 'PENDING' END,
                       attempts = attempts - 1, available_at = ?, updated_at = ?,
                       finished_at = CASE WHEN cancel_requested THEN ? ELSE NULL END,
                       lease_token = NULL, lease_expires_at = NULL
                   WHERE id = ? RETURNING *""",
                (ts, ts, ts, task_id),
            ).fetchone()
            self._clear_agent_task(conn, row["worker"], task_id)
            self._event(conn, row["worker"], "release", task_id=task_id, agent=row["worker"], ts=ts)
        self.notify()
        return Task.from_row(new)

    # -- human in the loop -----------------------------------------------
    def ask_human(self, task_id: int, token: str, question: str, options: Sequence[str] | None = None) -> Task:
        """Park a running task until a person answers; the attempt is not counted."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("a question for a person must be a non-empty string")
        q = dumps({"question": question, "options": list(options or [])}, "question")
        ts = now()
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, task_id, token, "waiting_human", None, ts)
            new = conn.execute(
                """UPDATE tasks SET status = 'WAITING_HUMAN', attempts = attempts - 1, question = ?,
                       answer = NULL, updated_at = ?, lease_token = NULL, lease_expires_at = NULL
                   WHERE id = ? RETURNING *""",
                (q, ts, task_id),
            ).fetchone()
            self._clear_agent_task(conn, row["worker"], task_id)
            self._event(conn, row["worker"], "ask_human", task_id=task_id, agent=row["worker"],
                        detail={"question": question[:500]}, ts=ts)
        return Task.from_row(new)

    def answer(self, task_id: int, answer: Any, *, by: str = "human") -> Task:
        """Resume a WAITING_HUMAN task; the answer is put in its payload
        (`human_answer`, with the question as `human_question`)."""
        answer_text = dumps(answer, "answer")
        ts = now()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"task {task_id} does not exist")
            if row["status"] != "WAITING_HUMAN":
                raise InvalidTransition(
                    f"task {task_id} is {row['status']}, not WAITING_HUMAN; only a task waiting for a person can be answered"
                )
            payload = loads(row["payload"])
            payload["human_answer"] = answer
            payload["human_question"] = (loads(row["question"]) or {}).get("question")
            new = conn.execute(
                """UPDATE tasks SET status = 'PENDING', payload = ?, answer = ?, available_at = ?,
                       updated_at = ? WHERE id = ? RETURNING *""",
                (dumps(payload, "payload", self.max_payload_bytes), answer_text, ts, ts, task_id),
            ).fetchone()
            self._event(conn, by, "answer", task_id=task_id, ts=ts)
        self.notify()
        return Task.from_row(new)

    # -- operator actions ------------------------------------------------
    def _finish_cancelled(self, conn, row, ts: float, actor: str) -> Task:
        new = conn.execute(
            """UPDATE tasks SET status = 'CANCELLED', finished_at = ?, updated_at = ?,
                   lease_token = NULL, lease_expires_at = NULL, cancel_requested = 1
               WHERE id = ? RETURNING *""",
            (ts, ts, row["id"]),
        ).fetchone()
        self._event(conn, actor, "cancelled", task_id=row["id"], ts=ts)
        self._fail_dependents(conn, row["id"], f"dependency {row['id']} was cancelled", ts)
        return Task.from_row(new)

    def cancel(self, task_id: int, *, by: str = "operator") -> Task:
        """PENDING/WAITING_HUMAN: cancelled now. RUNNING: flagged; the worker
        learns it on its next renew. Finished tasks are left as they are."""
        ts = now()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"task {task_id} does not exist")
            if row["status"] in ("PENDING", "WAITING_HUMAN"):
                return self._finish_cancelled(conn, row, ts, actor=by)
            if row["status"] == "RUNNING":
                new = conn.execute(
                    "UPDATE tasks SET cancel_requested = 1, updated_at = ? WHERE id = ? RETURNING *",
                    (ts, task_id),
                ).fetchone()
                self._event(conn, by, "cancel_requested", task_id=task_id, ts=ts)
                return Task.from_row(new)
            raise InvalidTransition(f"task {task_id} is already {row['status']}; nothing to cancel")

    def acknowledge_cancel(self, task_id: int, token: str) -> Task:
        """The worker stopped a task whose cancellation it learned on renew."""
        ts = now()
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, task_id, token, "cancelled", None, ts)
            self._clear_agent_task(conn, row["worker"], task_id)
            return self._finish_cancelled(conn, row, ts, actor=row["worker"])

    def retry(self, task_id: int, *, by: str = "operator") -> Task:
        """Run a finished (DONE, FAILED or CANCELLED) task again with fresh attempts."""
        ts = now()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"task {task_id} does not exist")
            if row["status"] not in TERMINAL_STATUSES:
                raise InvalidTransition(
                    f"task {task_id} is {row['status']}; only DONE, FAILED or CANCELLED tasks can be retried"
                )
            pending = conn.execute(
                """SELECT COUNT(*) FROM task_deps d JOIN tasks p ON p.id = d.depends_on
                   WHERE d.task_id = ? AND p.status != 'DONE'""",
                (task_id,),
            ).fetchone()[0]
            new = conn.execute(
                """UPDATE tasks SET status = 'PENDING', attempts = 0, deps_pending = ?, available_at = ?,
                       updated_at = ?, finished_at = NULL, error = NULL, error_reason = NULL,
                       result = NULL, cancel_requested = 0
                   WHERE id = ? RETURNING *""",
                (pending, ts, ts, task_id),
            ).fetchone()
            self._event(conn, by, "retry", task_id=task_id, detail={"from": row["status"]}, ts=ts)
        self.notify()
        return Task.from_row(new)

    # -- reaping ---------------------------------------------------------
    def reap_expired_leases(self) -> list[int]:
        """Return tasks whose lease expired to PENDING (or FAILED when their
        attempts are used up), recording the attempt. Returns their ids."""
        ts = now()
        with self._write() as conn:
            rows = conn.execute(
                "SELECT * FROM tasks WHERE status = 'RUNNING' AND lease_expires_at < ?", (ts,)
            ).fetchall()
            for row in rows:
                self._abandon(conn, row, "expired", "lease expired (worker stopped renewing)", ts)
        if rows:
            self.notify()
        return [r["id"] for r in rows]

    def recover_worker_tasks(self, worker: str, reason: str = "worker died") -> list[int]:
        """Requeue at once what a dead worker held (the attempt is counted)."""
        ts = now()
        with self._write() as conn:
            rows = conn.execute(
                "SELECT * FROM tasks WHERE status = 'RUNNING' AND worker = ?", (worker,)
            ).fetchall()
            for row in rows:
                self._abandon(conn, row, "crashed", reason, ts)
        if rows:
            self.notify()
        return [r["id"] for r in rows]

    def _abandon(self, conn, row, outcome: str, error: str, ts: float) -> None:
        self._end_attempt(conn, row["id"], row["lease_token"], outcome, error, ts)
        self._clear_agent_task(conn, row["worker"], row["id"])
        if row["cancel_requested"]:
            self._finish_cancelled(conn, row, ts, actor="reaper")
            return
        if row["attempts"] < row["max_attempts"]:
            conn.execute(
                """UPDATE tasks SET status = 'PENDING', available_at = ?, error = ?, error_reason = ?,
                       updated_at = ?, lease_token = NULL, lease_expires_at = NULL WHERE id = ?""",
                (ts, error, outcome, ts, row["id"]),
            )
            self._event(conn, "reaper", "requeue", task_id=row["id"], agent=row["worker"],
                        detail={"reason": outcome, "attempt": row["attempts"]}, ts=ts)
        else:
            self._after_failed_attempt(conn, row, error, outcome, False, ts)

    # -- reading ---------------------------------------------------------
    def get(self, task_id: int) -> Task | None:
        row = self._conn().execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else Task.from_row(row)

    def require(self, task_id: int) -> Task:
        task = self.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} does not exist")
        return task

    def attempts(self, task_id: int) -> list[dict]:
        rows = self._conn().execute(
            "SELECT * FROM task_attempts WHERE task_id = ? ORDER BY id", (task_id,)
        ).fetchall()
        return [{k: r[k] for k in r.keys() if k != "token"} for r in rows]

    def dependencies(self, task_id: int) -> list[int]:
        rows = self._conn().execute(
            "SELECT depends_on FROM task_deps WHERE task_id = ? ORDER BY depends_on", (task_id,)
        ).fetchall()
        return [r[0] for r in rows]

    def dependents(self, task_id: int) -> list[int]:
        rows = self._conn().execute(
            "SELECT task_id FROM task_deps WHERE depends_on = ? ORDER BY task_id", (task_id,)
        ).fetchall()
        return [r[0] for r in rows]

    def _filter_sql(self, status=None, skill=None, agent=None, text=None, since=None, until=None):
        clauses, params = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            bad = [s for s in statuses if s not in TASK_STATUSES]
            if bad:
                raise InvalidInput(
                    f"unknown status {', '.join(map(repr, bad))}; use one of {', '.join(TASK_STATUSES)}"
                )
            clauses.append("status IN (%s)" % ",".join("?" * len(statuses)))
            params += statuses
        if skill:
            clauses.append("skill = ?")
            params.append(skill)
        if agent:
            clauses.append("(worker = ? OR assigned_to = ?)")
            params += [agent, agent]
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                "(skill LIKE ? ESCAPE '\\' OR payload LIKE ? ESCAPE '\\' OR "
                "IFNULL(error, '') LIKE ? ESCAPE '\\' OR IFNULL(result, '') LIKE ? ESCAPE '\\')"
            )
            params += [like] * 4
        for value, op, name in ((since, ">=", "since"), (until, "<", "until")):
            if value is not None:
                if not isinstance(value, (int, float)):
                    raise InvalidInput(f"{name} must be epoch seconds (UTC), got {value!r}")
                clauses.append(f"created_at {op} ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_tasks(self, *, status=None, skill=None, agent=None, text=None, since=None,
                   until=None, limit: int = 50, offset: int = 0) -> Page:
        """A page of tasks, newest first, filtered in the database."""
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be from 1 to 1000, got {limit!r}")
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"offset must be >= 0, got {offset!r}")
        where, params = self._filter_sql(status, skill, agent, text, since, until)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT * FROM tasks{where} ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
            ).fetchall()
            total = conn.execute(f"SELECT COUNT(*) FROM tasks{where}", params).fetchone()[0]
        return Page([Task.from_row(r) for r in rows], total, limit, offset)

    def matching_ids(self, *, status=None, skill=None, agent=None, text=None, since=None,
                     until=None) -> list[int]:
        """Every task id matching a filter (for bulk actions)."""
        where, params = self._filter_sql(status, skill, agent, text, since, until)
        rows = self._conn().execute(f"SELECT id FROM tasks{where} ORDER BY id", params).fetchall()
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        """Task counts by status (every status present, zero when none)."""
        rows = self._conn().execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
        out = {s: 0 for s in TASK_STATUSES}
        out.update({r[0]: r[1] for r in rows})
        return out

    def counts_by_skill(self) -> dict[str, dict[str, int]]:
        rows = self._conn().execute(
            "SELECT skill, status, COUNT(*) FROM tasks GROUP BY status, skill"
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for skill, status, n in rows:
            out.setdefault(skill, {})[status] = n
        return out

    def pending_depth(self, skills: Iterable[str] | None = None) -> int:
        """Claimable-now tasks, optionally only those for `skills`."""
        sql = "SELECT COUNT(*) FROM tasks WHERE status = 'PENDING' AND deps_pending = 0 AND available_at <= ?"
        params: list = [now()]
        if skills is not None:
            skills = list(skills)
            if not skills:
                return 0
            sql += " AND skill IN (%s)" % ",".join("?" * len(skills))
            params += skills
        return self._conn().execute(sql, params).fetchone()[0]

    def oldest_pending_age(self) -> float | None:
        row = self._conn().execute(
            "SELECT MIN(created_at) FROM tasks WHERE status = 'PENDING'"
        ).fetchone()
        return None if row[0] is None else max(0.0, now() - row[0])

    def next_available_at(self) -> float | None:
        """When the earliest delayed (backoff or scheduled) task becomes claimable."""
        row = self._conn().execute(
            """SELECT MIN(available_at) FROM tasks
               WHERE status = 'PENDING' AND deps_pending = 0 AND available_at > ?""",
            (now(),),
        ).fetchone()
        return row[0]

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a task may be claimable (or a message may have arrived),
        at most `timeout` seconds. Cheap when idle: no polling loop."""
        deadline_wait = timeout
        nxt = self.next_available_at()
        if nxt is not None:
            deadline_wait = min(timeout, max(0.0, nxt - now()) + 0.001)
        woken = self._wake.wait(deadline_wait)
        return woken or (nxt is not None and nxt <= now())
