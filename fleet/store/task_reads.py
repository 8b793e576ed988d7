"""Reading the task queue: get, list with server-side filters and pages,
counts, queue depth, and `wait_for_work` (sleeps on the wake channel, no poll).
Mixed into `TaskQueueMixin`; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidInput, NotFound
from .schema import TASK_STATUSES
from .task_model import (
    MAX_ID,
    Page,
    Task,
    check_optional_text,
    check_task_id,
    is_number,
)
from .values import now

# The claim's candidate scan. INDEXED BY pins the partial index that holds
# only claimable rows (PENDING, dependencies done), so history never enters
# the hot path and the planner cannot pick the (status, id) index + a sort.
CLAIM_CANDIDATE_SQL = (
    "SELECT id FROM tasks INDEXED BY ix_tasks_claim "
    "WHERE status = 'PENDING' AND deps_pending = 0 AND available_at <= ? "
    "AND (assigned_to = ? OR (assigned_to IS NULL AND {skills})) "
    "ORDER BY priority DESC, id LIMIT 1"
)
# The same scan, wider, with what the model-aware order needs (claim_order.py):
# the first rows in the plain order, each with its skill, readiness and the
# model its payload names (NULL when none).
CLAIM_WINDOW_SQL = (
    "SELECT id, priority, skill, available_at, json_extract(payload, '$.model') AS model "
    "FROM tasks INDEXED BY ix_tasks_claim "
    "WHERE status = 'PENDING' AND deps_pending = 0 AND available_at <= ? "
    "AND (assigned_to = ? OR (assigned_to IS NULL AND {skills})) "
    "ORDER BY priority DESC, id LIMIT {window}"
)


# DONE tasks, newest first, without an index on status that holds them (a
# page written per drained task): a task is DONE only through the attempt that
# completed it, which is its newest task_attempts row (no attempt ends once it
# is DONE), so the attempts' task_id index lists the tasks that ever ran,
# newest first, and a PENDING backlog newer than every finished task is never
# read. INDEXED BY keeps that order (no sort of every DONE task); the task's
# status is a scalar subquery, not a join, which SQLite could answer with a
# Bloom filter built by reading every task. Output column `id`, so that
# UNION ALL ... ORDER BY id merges it with the other statuses' parts.
_DONE_IDS_NEWEST_FIRST = (
    "SELECT a.task_id AS id FROM task_attempts a INDEXED BY ix_attempts_task "
    "WHERE (SELECT t.status FROM tasks t WHERE t.id = a.task_id) = 'DONE' "
    "AND a.id = (SELECT MAX(b.id) FROM task_attempts b WHERE b.task_id = a.task_id)"
)


def skill_clause(skills: list[str], any_skill: bool) -> tuple[str, list[str]]:
    if any_skill:
        return "TRUE", []
    if not skills:
        return "FALSE", []  # only tasks assigned to this worker by name
    return "skill IN (%s)" % ",".join("?" * len(skills)), skills


class TaskReadsMixin:
    def get(self, task_id: int) -> Task | None:
        check_task_id(task_id)
        if not -MAX_ID <= task_id <= MAX_ID:
            return None  # no row can have it
        row = self._conn().execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else Task.from_row(row)

    def require(self, task_id: int) -> Task:
        task = self.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} does not exist; list tasks to find the right id")
        return task

    def attempts(self, task_id: int) -> list[dict]:
        """Every attempt of a task in order: worker, started, ended, outcome, error.

        Finished attempts are rows of task_attempts (written when they end);
        a running one is read from the task row, with outcome 'running'.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM task_attempts WHERE task_id = ? ORDER BY id", (task_id,)
            ).fetchall()
            running = conn.execute(
                "SELECT attempts, worker, started_at FROM tasks WHERE id = ? AND status = 'RUNNING'",
                (task_id,),
            ).fetchone()
        out = [{k: r[k] for k in r.keys() if k != "token"} for r in rows]
        if running is not None:
            out.append({"id": None, "task_id": task_id, "attempt_no": running["attempts"],
                        "worker": running["worker"], "started_at": running["started_at"],
                        "ended_at": None, "outcome": "running", "error": None,
                        "host": running["worker"].split("@", 1)[1] if "@" in (running["worker"] or "") else self.host})
        return out

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
        """(statuses, clauses, params) of a task filter.

        `statuses` is the status filter checked against TASK_STATUSES, in that
        order without repeats (None: no status test, also when it names every
        status); `clauses` and `params` are the other tests. Statuses go into
        the SQL as literals (`_where`), never as bound parameters: SQLite uses
        a partial index only for a query whose WHERE has that index's very
        term (`status = 'PENDING'`), which a `status = ?` never is. They come
        from TASK_STATUSES only, never from the caller's text.
        """
        statuses = None
        if status is not None:
            named = [status] if isinstance(status, str) else list(status)
            bad = [s for s in named if s not in TASK_STATUSES]
            if bad or not named:
                raise InvalidInput(
                    f"unknown status {', '.join(map(repr, bad)) or '(empty)'}; "
                    f"use one of {', '.join(TASK_STATUSES)}"
                )
            statuses = [s for s in TASK_STATUSES if s in named]
            if len(statuses) == len(TASK_STATUSES):
                statuses = None
        clauses, params = [], []
        for value, name in ((skill, "skill"), (agent, "agent"), (text, "text")):
            check_optional_text(value, f"the {name} filter")
            if value and "\x00" in value:  # SQLite would end the pattern there and match everything
                raise InvalidInput(f"the {name} filter contains a NUL character")
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
                if not is_number(value):
                    raise InvalidInput(f"{name} must be UTC epoch seconds, got {value!r}")
                clauses.append(f"created_at {op} ?")
                params.append(value)
        return statuses, clauses, params

    @staticmethod
    def _where(statuses: list[str] | None, clauses: list[str]) -> str:
        """The WHERE text of a filter. Statuses are literals from TASK_STATUSES
        (checked by `_filter_sql`): `status = 'X'` for one, IN for several."""
        if statuses is not None and any(s not in TASK_STATUSES for s in statuses):
            raise InvalidInput(f"unknown status in {statuses!r}")  # never reached from _filter_sql
        tests = list(clauses)
        if statuses:
            tests.insert(0, f"status = '{statuses[0]}'" if len(statuses) == 1
                         else "status IN ({})".format(",".join(f"'{s}'" for s in statuses)))
        return (" WHERE " + " AND ".join(tests)) if tests else ""  # nosec B608: literals checked above

    def _per_status(self, statuses, clauses, select: str) -> list[str]:
        """The query once per filtered status, each with its own `status = 'X'`
        term, so that each uses that status's index (a multi-status IN matches
        no partial index); one query when no status is filtered."""
        return [f"{select}{self._where(None if s is None else [s], clauses)}"  # nosec B608
                for s in (statuses or [None])]

    def list_tasks(self, *, status=None, skill=None, agent=None, text=None, since=None,
                   until=None, limit: int = 50, offset: int = 0) -> Page:
        """A page of tasks, newest first, filtered in the database."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be an integer from 1 to 1000, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"offset must be an integer >= 0, got {offset!r}")
        statuses, clauses, params = self._filter_sql(status, skill, agent, text, since, until)
        done_by_attempts = statuses is not None and "DONE" in statuses and not clauses
        if statuses is None or (len(statuses) == 1 and not done_by_attempts):
            # one status with other tests, or none: one SELECT, whose index the planner picks
            sql = f"SELECT * FROM tasks{self._where(statuses, clauses)} ORDER BY id DESC LIMIT ? OFFSET ?"  # nosec B608
            bound = [*params, limit, offset]
        else:
            # Several statuses, or DONE alone: the page's ids, one SELECT per status
            # in id order from its own index (DONE: from the attempts), merged
            # (UNION ALL with ORDER BY merges ordered parts row by row and stops
            # at the page's end); then those rows.
            parts, bound = [], []
            for s in statuses:
                if s == "DONE" and done_by_attempts:
                    parts.append(_DONE_IDS_NEWEST_FIRST)
                else:
                    parts.append(f"SELECT id FROM tasks{self._where([s], clauses)}")  # nosec B608
                    bound += params
            sql = ("SELECT * FROM tasks WHERE id IN (" + " UNION ALL ".join(parts)  # nosec B608
                   + " ORDER BY id DESC LIMIT ? OFFSET ?) ORDER BY id DESC")
            bound += [limit, offset]
        with self._read() as conn:
            total = self._filter_total(conn, statuses, clauses, params)
            # nothing on this page (often: a status no task of the skill has): no
            # scan for rows that are not there
            rows = [] if total <= offset else conn.execute(sql, bound).fetchall()
        return Page([Task.from_row(r) for r in rows], total, limit, offset)

    def _filter_total(self, conn, statuses, clauses, params) -> int:
        """How many tasks match. A filter on status and/or skill alone is
        answered from the trigger-kept task_counts; anything else is counted,
        status by status (each on its own index)."""
        if all(c == "skill = ?" for c in clauses):
            where = self._where(statuses, clauses)
            return conn.execute(f"SELECT IFNULL(SUM(n), 0) FROM task_counts{where}", params).fetchone()[0]  # nosec B608
        parts = self._per_status(statuses, clauses, "SELECT COUNT(*) FROM tasks")
        sql = " + ".join(f"({p})" for p in parts)
        return conn.execute(f"SELECT {sql}", params * len(parts)).fetchone()[0]  # nosec B608

    def matching_ids(self, *, status=None, skill=None, agent=None, text=None, since=None,
                     until=None) -> list[int]:
        """Every task id matching a filter (for bulk actions), ascending."""
        statuses, clauses, params = self._filter_sql(status, skill, agent, text, since, until)
        parts = self._per_status(statuses, clauses, "SELECT id FROM tasks")
        sql = " UNION ALL ".join(parts) + " ORDER BY id"
        rows = self._conn().execute(sql, params * len(parts)).fetchall()
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        """Task counts by status (every status present, zero when none)."""
        # kept by triggers on tasks (see schema): a few rows, not a scan
        rows = self._conn().execute("SELECT status, SUM(n) FROM task_counts GROUP BY status").fetchall()
        out = {s: 0 for s in TASK_STATUSES}
        out.update({r[0]: r[1] for r in rows})
        return out

    def counts_by_skill(self) -> dict[str, dict[str, int]]:
        rows = self._conn().execute(
            "SELECT skill, status, n FROM task_counts WHERE n > 0"
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for skill, status, n in rows:
            out.setdefault(skill, {})[status] = n
        return out

    def task_outcome_totals(self) -> dict[str, dict[str, int]]:
        """{skill: {"completed", "failed"}}: every entry into DONE / FAILED ever,
        as the DONE/FAILED task counts plus the tasks that have left those
        statuses since (retried, or deleted with pruned history; schema v8)."""
        rows = self._conn().execute(
            "SELECT skill, SUM(completed), SUM(failed) FROM ("
            " SELECT skill, CASE WHEN status = 'DONE' THEN n ELSE 0 END AS completed,"
            " CASE WHEN status = 'FAILED' THEN n ELSE 0 END AS failed"
            " FROM task_counts WHERE status = 'DONE' OR status = 'FAILED'"
            " UNION ALL SELECT skill, completed, failed FROM task_outcomes_left"
            ") AS outcomes GROUP BY skill ORDER BY skill"
        ).fetchall()
        return {skill: {"completed": int(done or 0), "failed": int(failed or 0)}
                for skill, done, failed in rows if done or failed}

    def pending_depth(self, skills: Iterable[str] | None = None) -> int:
        """Claimable-now tasks; with `skills`, only those a role with these
        skills claims: unassigned (a task assigned to a worker by name is
        that worker's alone)."""
        sql = ("SELECT COUNT(*) FROM tasks INDEXED BY ix_tasks_claim "
               "WHERE status = 'PENDING' AND deps_pending = 0 AND available_at <= ?")
        params: list = [now()]
        if skills is not None:
            skills = list(skills)
            if not skills:
                return 0
            sql += " AND assigned_to IS NULL AND skill IN (%s)" % ",".join("?" * len(skills))
            params += skills
        return self._conn().execute(sql, params).fetchone()[0]

    def oldest_pending_age(self) -> float | None:
        row = self._conn().execute(
            "SELECT created_at FROM tasks WHERE status = 'PENDING' ORDER BY id LIMIT 1"
        ).fetchone()
        return None if row is None else max(0.0, now() - row[0])

    def next_available_at(self) -> float | None:
        """When the earliest delayed (backoff or scheduled) task becomes claimable.

        A delayed row always has available_at > updated_at (it was set in the
        future when last written), which is what the small partial index
        `ix_tasks_delayed_v2` holds; rows due at once never enter it.
        """
        row = self._conn().execute(
            """SELECT MIN(available_at) FROM tasks
               WHERE status = 'PENDING' AND deps_pending = 0 AND available_at > updated_at
                 AND available_at > ?""",
            (now(),),
        ).fetchone()
        return row[0]

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a task may be claimable (or a message may have arrived),
        at most `timeout` seconds. Sleeps on the wake channel: an idle waiter
        uses no CPU and wakes within milliseconds of a commit that made work.
        Returns True when woken (or a delayed task came due), False on timeout.
        """
        if not is_number(timeout) or timeout < 0:
            raise InvalidInput(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        wait = float(timeout)
        nxt = self.next_available_at()
        if nxt is not None:
            wait = min(wait, max(0.0, nxt - now()) + 0.001)
        woken = self._wake.wait(wait)
        return woken or (nxt is not None and nxt <= now())
