"""The task queue's writes: enqueue, claim with a fenced lease, renew, finish,
fail with backoff, release, ask a person, cancel, retry, reap.

Every state change is one write transaction that also records the attempt and
an audit event, so a crash at any instruction leaves the queue consistent.
Dependents are promoted (or failed) in the same transaction as their parent.
Reads live in `task_reads.py`; the Task record and validation in `task_model.py`.
"""

from __future__ import annotations

import collections
import random
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InvalidInput, InvalidTransition, LeaseLost, NotFound
from .schema import TERMINAL_STATUSES
from .task_model import (  # noqa: F401
    MAX_ID,
    Page,
    Task,
    check_lease,
    check_name,
    check_optional_text,
    check_priority,
    check_skill,
    check_task_id,
    check_token,
    escaped_text,
    prepare_spec,
)
from .claim_order import PREFER_WINDOW, check_preference, claim_order
from .task_reads import CLAIM_CANDIDATE_SQL, CLAIM_WINDOW_SQL, TaskReadsMixin, skill_clause
from .values import dumps, loads, now

_INSERT_TASK = """INSERT INTO tasks (skill, payload, priority, status, assigned_to, idempotency_key,
    max_attempts, deps_pending, available_at, created_at, updated_at, finished_at, error,
    error_reason, created_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"""
_INSERT_TASKS_HEAD = _INSERT_TASK.split("VALUES")[0] + "VALUES "
_ROW_MARKS = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_BATCH_ROWS = 500  # 15 values a row: well under every backend's bound-parameter limit
# The unique key decides, not an earlier look: with many writers the insert
# that loses the race returns no row instead of failing.
_NEW_KEY_ONLY = """ ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id"""
_INSERT_EVENT = "INSERT INTO events (ts, actor, action, task_id, agent, detail) VALUES (?,?,?,?,?,?)"
# New rows count themselves (task_counts has no insert trigger; see schema).
_COUNT_NEW = """INSERT INTO task_counts (status, skill, n) VALUES (?, ?, ?)
    ON CONFLICT (status, skill) DO UPDATE SET n = n + excluded.n"""
_CLAIM = """UPDATE tasks SET status = 'RUNNING', attempts = attempts + 1, worker = ?,
    lease_token = ?, lease_expires_at = ?, started_at = ?, updated_at = ?
    WHERE id = (%s{lock}) AND status = 'PENDING' RETURNING *""" % CLAIM_CANDIDATE_SQL
# One named candidate of the model-aware order, re-checked and locked (a
# row another claimer holds is skipped, not waited for).
_CLAIM_ONE = """UPDATE tasks SET status = 'RUNNING', attempts = attempts + 1, worker = ?,
    lease_token = ?, lease_expires_at = ?, started_at = ?, updated_at = ?
    WHERE id = (SELECT id FROM tasks WHERE id = ? AND status = 'PENDING' AND deps_pending = 0
                AND available_at <= ?{lock}) RETURNING *"""
# (skills, any_skill, row lock) -> (claim SQL, its skill parameters, candidate SQL)
_CLAIM_SQL: dict[tuple, tuple[str, list, str]] = {}
_LOCK_TASKS = "UPDATE tasks SET updated_at = updated_at"  # + WHERE ... RETURNING *: see _owned
# A worker's agent row follows its claims in the claim's own transaction.
_AGENT_BUSY = """UPDATE agents SET current_task = ?, status = 'busy', detail = NULL, last_heartbeat = ?
    WHERE name = ?"""
_AGENT_IDLE = """UPDATE agents SET current_task = NULL, status = 'idle', detail = NULL, last_heartbeat = ?
    WHERE name = ? AND current_task = ?"""
# An attempt is written once, when it ends (append-only); while it runs, the
# tasks row (worker, lease_token, started_at, attempts) is the record of it.
_INSERT_ATTEMPT = """INSERT INTO task_attempts (task_id, attempt_no, worker, token, started_at,
    ended_at, outcome, error, suspect, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_COMPLETE = """UPDATE tasks SET status = 'DONE', result = ?, error = NULL, error_reason = NULL,
    finished_at = ?, updated_at = ?, lease_token = NULL, lease_expires_at = NULL
    WHERE id = ? AND status = 'RUNNING' AND lease_token = ? RETURNING *"""
# Unfinished-parent counts are recomputed, never decremented: on every parent
# change into or out of DONE (for waiting children) and whenever a task goes
# back to PENDING, so a parent that runs twice (operator retry) can neither
# drive a count below zero nor free a child early.
_DEPS_LEFT = """(SELECT COUNT(*) FROM task_deps d JOIN tasks p ON p.id = d.depends_on
    WHERE d.task_id = tasks.id AND p.status != 'DONE')"""
# A parent that failed or was cancelled while this task ran (after an
# operator retry of the parent): the task can never run again.
_DEAD_PARENT = """SELECT p.id, p.status FROM task_deps d JOIN tasks p ON p.id = d.depends_on
    WHERE d.task_id = ? AND p.status IN ('FAILED', 'CANCELLED') ORDER BY p.id LIMIT 1"""
_REFRESH_CHILDREN = """UPDATE tasks SET updated_at = ?, deps_pending = %s
    WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = ?)
      AND status IN ('PENDING', 'WAITING_HUMAN')
    RETURNING deps_pending""" % _DEPS_LEFT


def _created(ts: float) -> dict:
    """The fields of a task record as it is when created (PENDING, no attempt yet)."""
    return dict(status="PENDING", idempotency_key=None, attempts=0, deps_pending=0,  # noqa: C408
                created_at=ts, updated_at=ts, started_at=None, finished_at=None, worker=None,
                lease_token=None, lease_expires_at=None, cancel_requested=False, result=None,
                error=None, error_reason=None, question=None, answer=None)


def _from_spec(task_id: int, p: dict, payload: Any) -> dict:
    """The fields of a new task record that come from its prepared spec."""
    return {"id": task_id, "skill": p["skill"], "payload": payload, "priority": p["priority"],
            "assigned_to": p["assigned_to"], "idempotency_key": p["idempotency_key"],
            "max_attempts": p["max_attempts"], "available_at": p["available_at"],
            "created_by": p["created_by"]}


def _lease_lost(task_id: int) -> LeaseLost:
    return LeaseLost(
        f"task {task_id}: this lease is no longer valid (the task was reaped, released, "
        "cancelled or finished elsewhere); stop working on it, the store changed nothing"
    )


class TaskQueueMixin(TaskReadsMixin):
    """Task operations; mixed into the Store class with its connection layer."""

    # Where the SQL differs in shape by backend (a backend's dialect class,
    # first in its store's bases, overrides these SQLite defaults):
    # the claim's candidate row lock (SQLite's BEGIN IMMEDIATE already
    # admits one writer), and how new tasks are counted in task_counts.
    _claim_lock = ""
    _look_before_claim = True  # see claim()
    _count_new_sql = _COUNT_NEW

    # -- helpers ---------------------------------------------------------
    def _backoff_delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** min(max(0, attempts - 1), 30)))
        return delay / 2 + random.uniform(0, delay / 2)

    def _prepare(self, spec: dict, ts: float) -> dict:
        if not isinstance(spec, dict):
            raise InvalidInput(f"a task spec must be a dict of fields, got {type(spec).__name__}")
        return prepare_spec(spec, ts, default_max_attempts=self.default_max_attempts,
                            max_payload_bytes=self.max_payload_bytes)

    def _end_attempt(self, conn, row, token: str, outcome: str, error: str | None, ts: float,
                     suspect: bool = False):
        """Append the finished attempt, from the task row as it was while running."""
        worker = row["worker"] or "unknown"
        # The attempt ran on its worker's host: named in the worker's name where
        # several hosts share the store (fleet.hosts), else this one.
        host = worker.split("@", 1)[1] if "@" in worker else self.host
        conn.execute(_INSERT_ATTEMPT, (row["id"], row["attempts"], worker, token,
                                       row["started_at"] or ts, ts, outcome, error, int(suspect), host))

    def _clear_agent_task(self, conn, worker: str | None, task_id: int) -> None:
        if worker:
            conn.execute(
                "UPDATE agents SET current_task = NULL WHERE name = ? AND current_task = ?",
                (worker, task_id),
            )

    def _agent_idle(self, conn, worker: str | None, task_id: int, ts: float) -> None:
        """The worker finished `task_id` and holds nothing: its agent row says
        so (idle, heartbeat now) in the same transaction."""
        if worker:
            conn.execute(_AGENT_IDLE, (ts, worker, task_id))

    # Reads that a write transaction acts on are row-locking writes (a no-op
    # UPDATE ... RETURNING): with many writers (PostgreSQL) the row stays
    # locked until the transaction ends, and a writer that waited re-checks
    # the condition on the row's newest version, so the check and every
    # statement after it see the same task. (On SQLite the write lock of
    # BEGIN IMMEDIATE already gives that; the no-op write costs one row.)
    def _owned(self, conn, task_id: int, token: str):
        check_token(token)
        row = conn.execute(
            f"{_LOCK_TASKS} WHERE id = ? AND status = 'RUNNING' AND lease_token = ? RETURNING *",
            (task_id, token),
        ).fetchone()
        if row is None:
            raise _lease_lost(task_id)
        return row

    def _row(self, conn, task_id: int):
        check_task_id(task_id)
        row = (conn.execute(f"{_LOCK_TASKS} WHERE id = ? RETURNING *", (task_id,)).fetchone()
               if -MAX_ID <= task_id <= MAX_ID else None)
        if row is None:
            raise NotFound(f"task {task_id} does not exist; list tasks to find the right id")
        return row

    def _dead_parent(self, conn, task_id: int) -> str | None:
        """Why a task leaving RUNNING must not wait again: a parent of it was
        failed or cancelled while it ran (the parent's own failure fails only
        waiting children). None when every parent can still finish."""
        parent = conn.execute(_DEAD_PARENT, (task_id,)).fetchone()
        return None if parent is None else f"dependency {parent[0]} is {parent[1]}"

    def _refresh_children(self, conn, parent_id: int, ts: float) -> bool:
        """Recount unfinished parents of PENDING children; True if any is now free."""
        rows = conn.execute(_REFRESH_CHILDREN, (ts, parent_id)).fetchall()
        return any(r[0] == 0 for r in rows)

    # -- enqueue ---------------------------------------------------------
    def enqueue(self, skill: str, payload: dict | None = None, **options) -> Task:
        """Add one task. An existing idempotency key returns the existing task."""
        if options.get("idempotency_key") is not None or options.get("depends_on"):
            return self.enqueue_many([{"skill": skill, "payload": payload, **options}])[0]
        ts = now()
        p = self._prepare({"skill": skill, "payload": payload, **options}, ts)
        with self._write() as conn:
            task = self._insert_task(conn, p, ts)
        self.notify()
        return task

    def enqueue_many(self, specs: Sequence[dict]) -> list[Task]:
        """Add several tasks in one transaction; all are written or none.

        Every spec is validated before anything is written. A spec whose
        idempotency key exists (in the store or earlier in the batch) yields
        the existing task instead of a new one.
        """
        if not isinstance(specs, (list, tuple)):
            raise InvalidInput("enqueue_many takes a list of task specs (dicts)")
        ts = now()
        prepared = [self._prepare(s, ts) for s in specs]  # validate all first
        if not prepared:
            return []
        simple = all(p["idempotency_key"] is None and not p["depends_on"] for p in prepared)
        with self._write() as conn:
            if simple and len(prepared) > 1:
                out = self._insert_plain_batch(conn, prepared, ts)
            else:
                out = []
                for p in prepared:
                    existing = self._by_key(conn, p["idempotency_key"])
                    out.append(Task.from_row(existing) if existing is not None
                               else self._insert_task(conn, p, ts))
        self.notify()
        return out

    def _task_from_values(self, task_id: int, p: dict, ts: float, status: str, pending: int,
                          error: str | None = None, reason: str | None = None) -> Task:
        return Task._fast({**_created(ts), **_from_spec(task_id, p, loads(p["payload"])),
                           "status": status, "deps_pending": pending, "error": error, "error_reason": reason,
                           "finished_at": ts if status == "FAILED" else None})

    def _by_key(self, conn, key: str | None):
        if key is None:
            return None
        return conn.execute("SELECT * FROM tasks WHERE idempotency_key = ?", (key,)).fetchone()

    def _insert_task(self, conn, p: dict, ts: float) -> Task:
        status, error, reason, pending = "PENDING", None, None, 0
        for parent_id in p["depends_on"]:
            # locked (see _owned): a parent cannot finish between this look and the child's insert
            parent = conn.execute(f"{_LOCK_TASKS} WHERE id = ? RETURNING status", (parent_id,)).fetchone()
            if parent is None:
                raise InvalidInput(f"depends_on names task {parent_id}, which does not exist")
            if parent["status"] in ("FAILED", "CANCELLED"):
                status, reason = "FAILED", "dependency_failed"
                error = f"dependency {parent_id} is {parent['status']}"
            elif parent["status"] != "DONE":
                pending += 1
        row = conn.execute(_INSERT_TASK + _NEW_KEY_ONLY, (
            p["skill"], p["payload"], p["priority"], status, p["assigned_to"],
            p["idempotency_key"], p["max_attempts"], pending, p["available_at"], ts, ts,
            ts if status == "FAILED" else None, error, reason, p["created_by"])).fetchone()
        if row is None:  # another writer took the idempotency key since we looked: that task is the answer
            return Task.from_row(self._by_key(conn, p["idempotency_key"]))
        task_id = row[0]
        conn.execute(self._count_new_sql, (status, p["skill"], 1))
        if p["depends_on"]:
            conn.executemany(
                "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                [(task_id, d) for d in p["depends_on"]],
            )
            conn.executemany(
                "UPDATE tasks SET has_dependents = 1 WHERE id = ? AND has_dependents = 0",
                [(d,) for d in p["depends_on"]],
            )
        # No "enqueue" event: the task row (created_at, created_by) is that record.
        if status == "FAILED":
            conn.execute(_INSERT_EVENT, (ts, "store", "fail", task_id, None,
                                         dumps({"reason": reason, "error": error}, "event detail")))
        return self._task_from_values(task_id, p, ts, status, pending, error, reason)

    def _insert_plain_batch(self, conn, prepared: list[dict], ts: float) -> list[Task]:
        """Bulk path for specs with no idempotency key and no dependencies:
        multi-row INSERTs that read their ids back (ids are handed out in row
        order, but need not be consecutive when other writers insert too).

        No audit event: every task row keeps its own created_at and
        created_by, and the activity feed shows a batch as one entry.
        """
        ids: list[int] = []
        for lo in range(0, len(prepared), _BATCH_ROWS):
            chunk = prepared[lo:lo + _BATCH_ROWS]
            values: list = []
            for p in chunk:
                values += (p["skill"], p["payload"], p["priority"], "PENDING", p["assigned_to"], None,
                           p["max_attempts"], 0, p["available_at"], ts, ts, None, None, None, p["created_by"])
            rows = conn.execute(_INSERT_TASKS_HEAD + ",".join([_ROW_MARKS] * len(chunk)) + " RETURNING id",
                                values).fetchall()
            ids += sorted(r[0] for r in rows)
        per_skill = collections.Counter(p["skill"] for p in prepared)
        conn.executemany(self._count_new_sql, [("PENDING", skill, n) for skill, n in per_skill.items()])
        # The records handed back: one JSON decode for every payload.
        payloads = loads("[" + ",".join(p["payload"] for p in prepared) + "]")
        common = _created(ts)
        return [Task._fast({**common, **_from_spec(task_id, p, payload)})
                for task_id, p, payload in zip(ids, prepared, payloads, strict=True)]

    # -- claim and lease -------------------------------------------------
    def claim(self, worker: str, skills: Iterable[str] | None = None, *,
              lease_s: float | None = None, any_skill: bool = False, prefer: dict | None = None) -> Task | None:
        """Atomically claim the best claimable task for `worker`.

        Claimable: PENDING, no unfinished dependencies, `available_at` reached,
        and either assigned to this worker by name, or unassigned with a skill
        in `skills` (or any skill when `any_skill`). Highest priority first,
        then lowest id; with `prefer` (see claim_order.py), loaded-model
        tasks first within the top priority and the waiting-age bound.
        Returns exactly the row it claimed, with its lease token, or None.
        """
        pref = check_preference(prefer)
        args = self._claim_args(worker, skills, lease_s, any_skill)
        ts = now()
        # A read-only look first: a worker with nothing to do (woken by some
        # other commit) never takes the write lock away from busy workers.
        # (Not on a backend whose claim skips locked rows: there an empty
        # claim blocks nobody, and the look would cost a round trip.)
        if self._look_before_claim and self._conn().execute(args[4], (ts, worker, *args[2])).fetchone() is None:
            return None
        with self._write() as conn:
            return self._claim_in(conn, *args[:4], ts, pref, args[5])

    def _claim_args(self, worker, skills, lease_s, any_skill) -> tuple:
        check_name(worker, "worker")
        lease_s = check_lease(self.lease_s if lease_s is None else lease_s)
        skills = (skills,) if isinstance(skills, str) else tuple(skills or ())
        key = (skills, bool(any_skill), self._claim_lock)
        # A worker asks with the same skills every time; anything but names is
        # refused below (check_skill), never used as a cache key.
        sql = _CLAIM_SQL.get(key) if all(type(s) is str for s in skills) else None
        if sql is None:
            for s in skills:
                check_skill(s)
            clause, params = skill_clause(list(skills), any_skill)
            sql = (_CLAIM.format(skills=clause, lock=self._claim_lock), params,
                   CLAIM_CANDIDATE_SQL.format(skills=clause),
                   CLAIM_WINDOW_SQL.format(skills=clause, window=PREFER_WINDOW))
            if len(_CLAIM_SQL) < 256:
                _CLAIM_SQL[key] = sql
        return worker, sql[0], sql[1], lease_s, sql[2], sql[3]

    def _claim_in(self, conn, worker: str, sql: str, params: list, lease_s: float, ts: float,
                  pref=None, window_sql: str | None = None) -> Task | None:
        token = secrets.token_hex(12)
        if pref is None:
            row = conn.execute(sql, (worker, token, ts + lease_s, ts, ts, ts, worker, *params)).fetchone()
        else:  # the model-aware order: read a window of candidates, take the first still free
            row = None
            candidates = conn.execute(window_sql, (ts, worker, *params)).fetchall()
            one = _CLAIM_ONE.format(lock=self._claim_lock)
            for task_id in claim_order(candidates, pref):
                row = conn.execute(one, (worker, token, ts + lease_s, ts, ts, task_id, ts)).fetchone()
                if row is not None:
                    break
        if row is None:
            return None
        # The agent's state rides in the claim's transaction: no separate
        # heartbeat commit per task. (The claim itself is the attempt's
        # record while it runs; no audit event is written for it.)
        conn.execute(_AGENT_BUSY, (row["id"], ts, worker))
        return Task.from_row(row)

    def renew(self, task_id: int, token: str, lease_s: float | None = None) -> bool:
        """Extend the lease. Returns True when cancellation was requested.
        Raises LeaseLost (changing nothing) when the token is stale."""
        lease_s = check_lease(self.lease_s if lease_s is None else lease_s)
        check_token(token)
        ts = now()
        with self._write() as conn:
            row = conn.execute(
                """UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND status = 'RUNNING'
                   AND lease_token = ? RETURNING cancel_requested""",
                (ts + lease_s, task_id, token),
            ).fetchone()
            if row is None:
                raise _lease_lost(task_id)
        return bool(row[0])

    def complete(self, task_id: int, token: str, result: Any = None) -> Task:
        """Finish the attempt successfully and promote dependents, atomically."""
        check_token(token)
        result_text = dumps(result, "result")
        ts = now()
        with self._write() as conn:
            done, _ = self._complete_in(conn, task_id, token, result_text, ts, True)
        self.notify()  # dependents may be free; live views (SSE) wake on it too
        return Task.from_row(done)

    def _complete_in(self, conn, task_id: int, token: str, result_text: str, ts: float,
                     clear_agent: bool):
        done = conn.execute(_COMPLETE, (result_text, ts, ts, task_id, token)).fetchone()
        if done is None:
            raise _lease_lost(task_id)
        self._end_attempt(conn, done, token, "done", None, ts)
        promoted = done["has_dependents"] and self._refresh_children(conn, task_id, ts)
        if clear_agent:
            self._agent_idle(conn, done["worker"], task_id, ts)
        return done, promoted

    def complete_and_claim(self, task_id: int, token: str, result: Any = None, *, worker: str,
                           skills: Iterable[str] | None = None, lease_s: float | None = None,
                           any_skill: bool = False, prefer: dict | None = None) -> tuple[Task, Task | None]:
        """`complete()` then `claim()` in ONE transaction: a busy worker pays
        one commit (one fsync at full durability) per task instead of two.

        Same semantics as the two calls: the completion is fenced (LeaseLost,
        and nothing changes, when the token is stale), dependents are promoted
        first and may be the task claimed next. Returns (done, next or None).
        """
        check_token(token)
        result_text = dumps(result, "result")
        pref = check_preference(prefer)
        args = self._claim_args(worker, skills, lease_s, any_skill)
        ts = now()
        with self._write() as conn:
            done, _ = self._complete_in(conn, task_id, token, result_text, ts, False)
            nxt = self._claim_in(conn, *args[:4], ts, pref, args[5])
            if nxt is None:  # a claimed next task already replaced current_task
                self._agent_idle(conn, done["worker"], task_id, ts)
        self.notify()
        return Task.from_row(done), nxt

    def fail(self, task_id: int, token: str, error: str, *, retryable: bool = True,
             reason: str | None = None) -> Task:
        """Record a failed attempt: back to PENDING after a backoff, or FAILED
        (dead letter) when not retryable or its attempts are used up."""
        ts = now()
        error = escaped_text(str(error)[:20000])  # a failure is recorded whatever its text
        check_optional_text(reason, "reason")
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, row, token, reason or "failed", error, ts)
            task = self._after_failed_attempt(conn, row, error, reason or "error", retryable, ts)
            self._agent_idle(conn, row["worker"], task_id, ts)
        self.notify()
        return task

    def _after_failed_attempt(self, conn, row, error: str, reason: str, retryable: bool, ts: float) -> Task:
        task_id = row["id"]
        if row["cancel_requested"]:
            return self._finish_cancelled(conn, row, ts, actor=row["worker"] or "store")
        if retryable and row["attempts"] < row["max_attempts"]:
            dead = self._dead_parent(conn, task_id)
            if dead is not None:
                return self._after_failed_attempt(conn, row, dead, "dependency_failed", False, ts)
            new = conn.execute(
                f"""UPDATE tasks SET status = 'PENDING', available_at = ?, error = ?, error_reason = ?,
                       updated_at = ?, lease_token = NULL, lease_expires_at = NULL,
                       deps_pending = {_DEPS_LEFT}
                   WHERE id = ? RETURNING *""",
                (ts + self._backoff_delay(row["attempts"]), error, reason, ts, task_id),
            ).fetchone()
            self._event(conn, row["worker"] or "store", "retry_scheduled", task_id=task_id,
                        agent=row["worker"], detail={"reason": reason, "attempt": row["attempts"],
                                                     "available_at": new["available_at"]}, ts=ts)
            return Task.from_row(new)
        new = conn.execute(
            """UPDATE tasks SET status = 'FAILED', error = ?, error_reason = ?, finished_at = ?,
                   updated_at = ?, lease_token = NULL, lease_expires_at = NULL
               WHERE id = ? RETURNING *""",
            (error, reason, ts, ts, task_id),
        ).fetchone()
        self._event(conn, row["worker"] or "store", "fail", task_id=task_id, agent=row["worker"],
                    detail={"reason": reason, "attempts": row["attempts"],
                            "dead_letter": row["attempts"] >= row["max_attempts"]}, ts=ts)
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

    def release(self, task_id: int, token: str, *, available_at: float | None = None,
                outcome: str = "released", note: str | None = None) -> Task:
        """Give the task back (graceful stop) without counting the attempt;
        claimable again at `available_at` (None: at once). `outcome` names
        the attempt's end (e.g. 'deferred'), `note` says why (kept on the
        attempt and as the task's error until it runs again)."""
        ts = now()
        check_optional_text(outcome, "outcome")
        if available_at is not None and (isinstance(available_at, bool)
                                         or not isinstance(available_at, (int, float))):
            raise InvalidInput(f"available_at must be epoch seconds, not {available_at!r}")
        note = escaped_text(str(note)[:20000]) if note is not None else None
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            self._end_attempt(conn, row, token, outcome or "released", note, ts)
            if row["cancel_requested"]:
                conn.execute("UPDATE tasks SET attempts = attempts - 1 WHERE id = ?", (task_id,))
                self._agent_idle(conn, row["worker"], task_id, ts)
                return self._finish_cancelled(conn, row, ts, actor=row["worker"] or "store")
            dead = self._dead_parent(conn, task_id)
            if dead is not None:
                conn.execute("UPDATE tasks SET attempts = attempts - 1 WHERE id = ?", (task_id,))
                self._agent_idle(conn, row["worker"], task_id, ts)
                return self._after_failed_attempt(conn, self._row(conn, task_id), dead, "dependency_failed",
                                                  False, ts)
            at = ts if available_at is None else max(ts, float(available_at))
            new = conn.execute(
                f"""UPDATE tasks SET status = 'PENDING', attempts = attempts - 1, available_at = ?,
                       error = COALESCE(?, error), error_reason = COALESCE(?, error_reason),
                       updated_at = ?, lease_token = NULL, lease_expires_at = NULL,
                       deps_pending = {_DEPS_LEFT}
                   WHERE id = ? RETURNING *""",
                (at, note, outcome if note is not None else None, ts, task_id),
            ).fetchone()
            self._agent_idle(conn, row["worker"], task_id, ts)
            self._event(conn, row["worker"], "release", task_id=task_id, agent=row["worker"], ts=ts,
                        **({"detail": {"outcome": outcome, "available_at": at}} if at > ts else {}))
        self.notify()
        return Task.from_row(new)

    # -- human in the loop -----------------------------------------------
    def ask_human(self, task_id: int, token: str, question: str, options: Sequence[str] | None = None) -> Task:
        """Park a running task until a person answers; the attempt is not counted."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("a question for a person must be a non-empty string")
        if options is not None:
            if isinstance(options, str) or not hasattr(options, "__iter__"):
                raise InvalidInput("options must be a list of strings (the answers a person can pick)")
            options = list(options)  # read once: an iterator is used up by the check
            if not all(isinstance(o, str) for o in options):
                raise InvalidInput("options must be a list of strings (the answers a person can pick)")
        q = dumps({"question": question, "options": options or []}, "question")
        ts = now()
        with self._write() as conn:
            row = self._owned(conn, task_id, token)
            if row["cancel_requested"]:  # cancelled while running: do not park it
                self._end_attempt(conn, row, token, "cancelled", None, ts)
                self._agent_idle(conn, row["worker"], task_id, ts)
                return self._finish_cancelled(conn, row, ts, actor=row["worker"] or "store")
            dead = self._dead_parent(conn, task_id)
            if dead is not None:  # nobody should be asked about a task that can never run
                self._end_attempt(conn, row, token, "dependency_failed", dead, ts)
                self._agent_idle(conn, row["worker"], task_id, ts)
                return self._after_failed_attempt(conn, row, dead, "dependency_failed", False, ts)
            self._end_attempt(conn, row, token, "waiting_human", None, ts)
            new = conn.execute(
                """UPDATE tasks SET status = 'WAITING_HUMAN', attempts = attempts - 1, question = ?,
                       answer = NULL, updated_at = ?, lease_token = NULL, lease_expires_at = NULL
                   WHERE id = ? RETURNING *""",
                (q, ts, task_id),
            ).fetchone()
            self._agent_idle(conn, row["worker"], task_id, ts)
            self._event(conn, row["worker"], "ask_human", task_id=task_id, agent=row["worker"],
                        detail={"question": question[:500]}, ts=ts)
        return Task.from_row(new)

    def answer(self, task_id: int, answer: Any, *, by: str = "human") -> Task:
        """Resume a WAITING_HUMAN task; the answer is put in its payload
        (`human_answer`, with the question as `human_question`)."""
        check_name(by, "by (who does this)")
        answer_text = dumps(answer, "answer")
        ts = now()
        with self._write() as conn:
            row = self._row(conn, task_id)
            if row["status"] != "WAITING_HUMAN":
                raise InvalidTransition(
                    f"task {task_id} is {row['status']}, not WAITING_HUMAN; only a task waiting for a person can be answered"
                )
            payload = loads(row["payload"])
            payload["human_answer"] = answer
            payload["human_question"] = (loads(row["question"]) or {}).get("question")
            new = conn.execute(
                f"""UPDATE tasks SET status = 'PENDING', payload = ?, answer = ?, available_at = ?,
                       updated_at = ?, deps_pending = {_DEPS_LEFT} WHERE id = ? RETURNING *""",
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
        """PENDING/WAITING_HUMAN: cancelled now and never runs. RUNNING: flagged;
        the worker learns it on its next renew. Finished tasks are refused."""
        check_name(by, "by (who does this)")
        ts = now()
        with self._write() as conn:
            row = self._row(conn, task_id)
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
            self._end_attempt(conn, row, token, "cancelled", None, ts)
            self._agent_idle(conn, row["worker"], task_id, ts)
            return self._finish_cancelled(conn, row, ts, actor=row["worker"])

    def retry(self, task_id: int, *, by: str = "operator") -> Task:
        """Run a finished (DONE, FAILED or CANCELLED) task again with fresh attempts.

        Refused while one of its parents is FAILED or CANCELLED (retry the
        parent first). Retrying a DONE parent makes its still-PENDING
        children wait for it again.
        """
        check_name(by, "by (who does this)")
        ts = now()
        with self._write() as conn:
            row = self._row(conn, task_id)
            if row["status"] not in TERMINAL_STATUSES:
                raise InvalidTransition(
                    f"task {task_id} is {row['status']}; only DONE, FAILED or CANCELLED tasks can be retried"
                )
            parents = conn.execute(
                """SELECT p.id, p.status FROM task_deps d JOIN tasks p ON p.id = d.depends_on
                   WHERE d.task_id = ? AND p.status != 'DONE'""",
                (task_id,),
            ).fetchall()
            dead = [f"{p['id']} ({p['status']})" for p in parents if p["status"] in ("FAILED", "CANCELLED")]
            if dead:
                raise InvalidTransition(
                    f"task {task_id} depends on {', '.join(dead)}; retry that task first, then this one"
                )
            new = conn.execute(
                """UPDATE tasks SET status = 'PENDING', attempts = 0, deps_pending = ?, available_at = ?,
                       updated_at = ?, finished_at = NULL, started_at = NULL, error = NULL,
                       error_reason = NULL, result = NULL, cancel_requested = 0, worker = NULL,
                       lease_token = NULL, lease_expires_at = NULL
                   WHERE id = ? RETURNING *""",
                (len(parents), ts, ts, task_id),
            ).fetchone()
            self._refresh_children(conn, task_id, ts)
            self._event(conn, by, "retry", task_id=task_id, detail={"from": row["status"]}, ts=ts)
        self.notify()
        return Task.from_row(new)

    # -- reaping ---------------------------------------------------------
    def expired_leases(self) -> list[tuple[int, str | None, float | None]]:
        """(task id, worker, claimed at) of RUNNING tasks whose lease has
        expired: a cheap read for the supervisor's fencing, which must tell
        the process that claimed a task from a later one of the same name."""
        rows = self._conn().execute(
            "SELECT id, worker, started_at FROM tasks WHERE status = 'RUNNING' AND lease_expires_at < ?", (now(),)
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def reap_expired_leases(self) -> list[int]:
        """Return tasks whose lease expired to PENDING, recording the attempt
        (it does not use one of the task's attempts; see `_abandon`: the
        poison-pill rule). Returns their ids."""
        if not self.expired_leases():
            return []  # the common case: no write transaction at all
        ts = now()
        with self._write() as conn:
            rows = conn.execute(
                f"{_LOCK_TASKS} WHERE status = 'RUNNING' AND lease_expires_at < ? RETURNING *", (ts,)
            ).fetchall()
            for row in rows:
                self._abandon(conn, row, "expired", "lease expired (worker stopped renewing)", ts)
        if rows:
            self.notify()
        return [r["id"] for r in rows]

    def recover_worker_tasks(self, worker: str, reason: str = "worker died") -> list[int]:
        """Requeue what a dead worker held; the crash is recorded but does not
        use one of the task's attempts (see `_abandon`: the poison-pill rule)."""
        ts = now()
        with self._write() as conn:
            rows = conn.execute(
                f"{_LOCK_TASKS} WHERE status = 'RUNNING' AND worker = ? RETURNING *", (worker,)
            ).fetchall()
            for row in rows:
                self._abandon(conn, row, "crashed", reason, ts)
        if rows:
            self.notify()
        return [r["id"] for r in rows]

    def _abandon(self, conn, row, outcome: str, error: str, ts: float) -> None:
        """The worker holding `row` is gone (`crashed`) or stopped renewing
        (`expired`) without saying how the attempt ended.

        A crash does not use up one of the task's attempts: the worker died,
        not necessarily because of this task (the OOM killer, an operator, a
        host going down). It is recorded, and when it implicates the task
        (`_crash_suspect`) the task is retried with backoff; `max_crashes`
        such crashes make it a poison pill, dead-lettered as `poison_pill`.
        """
        suspect = self._crash_suspect(conn, row, outcome, ts)
        self._end_attempt(conn, row, row["lease_token"], outcome, error, ts, suspect)
        self._clear_agent_task(conn, row["worker"], row["id"])
        if row["cancel_requested"]:
            self._finish_cancelled(conn, row, ts, actor="reaper")
            return
        dead = self._dead_parent(conn, row["id"])
        if dead is not None:
            self._after_failed_attempt(conn, row, dead, "dependency_failed", False, ts)
            return
        suspects = conn.execute("SELECT COUNT(*) FROM task_attempts WHERE task_id = ? AND suspect = 1",
                                (row["id"],)).fetchone()[0] if suspect else 0
        if suspects >= self.max_crashes:
            self._after_failed_attempt(
                conn, row, f"poison pill: this task took down {suspects} workers, each within "
                f"{self.poison_window_s:g} s of claiming it while other tasks completed and no other worker "
                f"died ([queue] max_crashes, poison_window_s); the attempts show each crash. Fix the skill or "
                f"its payload, then retry the task. Last: {error}", "poison_pill", False, ts)
            return
        delay = self._backoff_delay(suspects) if suspect else 0.0
        conn.execute(
            f"""UPDATE tasks SET status = 'PENDING', attempts = attempts - 1, available_at = ?, error = ?,
                   error_reason = ?, updated_at = ?, lease_token = NULL, lease_expires_at = NULL,
                   deps_pending = {_DEPS_LEFT} WHERE id = ?""",
            (ts + delay, error, outcome, ts, row["id"]),
        )
        self._event(conn, "reaper", "requeue", task_id=row["id"], agent=row["worker"],
                    detail={"reason": outcome, "attempt": row["attempts"], "suspect": suspect,
                            "suspect_crashes": suspects}, ts=ts)

    def _crash_suspect(self, conn, row, outcome: str, ts: float) -> bool:
        """Whether a crash-ended attempt implicates its task: the worker died
        soon after the claim (within [queue] poison_window_s; for an expired
        lease, counted from its last renewal), another task completed in the
        same stretch (the fleet can run work), and no other attempt ended in
        a crash then (a storm of kills hits whatever runs: no task is to
        blame)."""
        started = row["started_at"] or ts
        last_alive = ts if outcome != "expired" else (row["lease_expires_at"] or ts) - self.lease_s
        if last_alive - started > self.poison_window_s:
            return False
        since = started - self.poison_window_s
        lo = self._id_range("task_attempts", since, None)[0]  # attempts are appended as they end
        seen = {r[0] for r in conn.execute(
            "SELECT DISTINCT outcome FROM task_attempts WHERE id >= ? AND ended_at >= ? AND task_id != ? "
            "AND outcome IN ('done', 'crashed', 'expired')", (lo, since, row["id"]))}
        return "done" in seen and not seen & {"crashed", "expired"}
