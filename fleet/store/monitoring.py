"""Read-only queries behind the dashboard and /metrics: per-skill stats, the
attempt timeline, throughput buckets, per-worker activity, event tallies and
note channels. Nothing here writes. (SQL text is built only from constants and
'?' placeholders; every value is a bound parameter.)
"""

from __future__ import annotations

from collections.abc import Iterable

from .values import loads, now

# Tasks finished per time bucket and status: (bucket, status, count) for
# [since, until). DONE tasks are not in any finish-time index (writing one is
# a page per drained task): each is counted from the attempt that finished it
# (outcome 'done', ended_at = the task's finished_at, the same value written
# in the same transaction), and attempts are found by id, which follows time
# (`_id_range`; the task is read by a scalar subquery, not a join, so no plan
# reads every task first, whatever the planner's statistics say). FAILED and
# CANCELLED tasks are in the partial index ix_tasks_ended: the query repeats
# its term word for word and names it, as the planner would otherwise read
# every FAILED row through ix_tasks_not_done.
# Parameters: since, width, attempt id lo, hi, since, until, since, width, since, until.
FINISHED_PER_BUCKET_SQL = """
    SELECT CAST((a.ended_at - ?) / ? AS INTEGER) AS b, 'DONE', COUNT(*)
    FROM task_attempts a
    WHERE a.id BETWEEN ? AND ? AND a.ended_at >= ? AND a.ended_at < ? AND a.outcome = 'done'
      AND (SELECT t.finished_at FROM tasks t WHERE t.id = a.task_id AND t.status = 'DONE') = a.ended_at
    GROUP BY b
    UNION ALL
    SELECT CAST((finished_at - ?) / ? AS INTEGER) AS b, status, COUNT(*)
    FROM tasks INDEXED BY ix_tasks_ended
    WHERE (status = 'FAILED' OR status = 'CANCELLED') AND finished_at >= ? AND finished_at < ?
    GROUP BY b, status"""

# Upper bounds (seconds) of the task-duration histogram exported to Prometheus.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


class MonitoringMixin:
    """Aggregates for monitoring; mixed into Store."""

    def skill_stats(self, since: float | None = None) -> dict[str, dict]:
        """Per skill: task counts by status, finished count, mean and max run
        seconds of DONE tasks and the last finish time (optionally since `since`)."""
        # Every task since `since` is read in table order (NOT INDEXED): through
        # ix_tasks_skill the planner would visit the rows in skill order, one
        # random lookup each, several times slower. With no `since`, the counts
        # are the trigger-kept task_counts.
        params = [] if since is None else [since]
        counts_sql = ("SELECT skill, status, n FROM task_counts WHERE n > 0" if since is None else
                      "SELECT skill, status, COUNT(*) FROM tasks NOT INDEXED WHERE created_at >= ? "
                      "GROUP BY skill, status")
        conn = self._conn()
        out: dict[str, dict] = {}
        for skill, status, n in conn.execute(counts_sql, params):
            entry = out.setdefault(skill, {"skill": skill, "counts": {}, "total": 0})
            entry["counts"][status] = n
            entry["total"] += n
        extra = " AND created_at >= ?" if since is not None else ""
        for skill, n, mean, longest, last in conn.execute(
            "SELECT skill, COUNT(*), AVG(finished_at - started_at), MAX(finished_at - started_at), "  # nosec B608
            f"MAX(finished_at) FROM tasks NOT INDEXED WHERE status = 'DONE' AND started_at IS NOT NULL{extra} "
            "GROUP BY skill", params
        ):
            entry = out.setdefault(skill, {"skill": skill, "counts": {}, "total": 0})
            entry.update(done=n, mean_run_s=mean, max_run_s=longest, last_finished_at=last)
        for entry in out.values():
            finished = sum(entry["counts"].get(s, 0) for s in ("DONE", "FAILED"))
            entry["failure_rate"] = (entry["counts"].get("FAILED", 0) / finished) if finished else None
        return out

    def attempt_timeline(self, since: float, until: float | None = None, limit: int = 500) -> list[dict]:
        """Task attempts overlapping [since, until), newest first, with the task's skill."""
        until = now() if until is None else until
        rows = self._conn().execute(
            """SELECT * FROM (
                 SELECT a.task_id, a.attempt_no, a.worker, a.started_at, a.ended_at, a.outcome,
                        a.error, t.skill
                 FROM task_attempts a JOIN tasks t ON t.id = a.task_id
                 WHERE a.id >= ? AND a.ended_at >= ? AND a.started_at < ?
                 UNION ALL
                 SELECT id, attempts, worker, started_at, NULL, 'running', NULL, skill
                 FROM tasks WHERE status = 'RUNNING' AND started_at < ?) AS spans
               ORDER BY started_at DESC LIMIT ?""",
            (self._id_range("task_attempts", since, None)[0], since, until, until, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def finished_series(self, since: float, bucket_s: float, buckets: int) -> dict[str, list[int]]:
        """Tasks finished per time bucket from `since`: DONE and FAILED counts."""
        out = {"DONE": [0] * buckets, "FAILED": [0] * buckets, "CANCELLED": [0] * buckets}
        for b, status, n in self._finished_per_bucket(since, bucket_s, since + bucket_s * buckets):
            if 0 <= b < buckets:
                out[status][b] += n
        return out

    def _finished_per_bucket(self, since: float, width: float, until: float) -> list[tuple]:
        """(bucket, status, count) of tasks finished in [since, until), buckets
        `width` seconds wide from `since` (see FINISHED_PER_BUCKET_SQL)."""
        with self._read() as conn:  # one snapshot: the id range and the counts
            lo, hi = self._id_range("task_attempts", since, until)
            return conn.execute(
                FINISHED_PER_BUCKET_SQL,
                (since, width, lo, hi, since, until, since, width, since, until),
            ).fetchall()

    def worker_activity(self) -> dict[str, dict]:
        """Per worker name: attempts run, attempts running now and when it last
        started or finished an attempt (for idle detection)."""
        # Finished attempts are task_attempts rows; running ones are RUNNING tasks.
        rows = self._conn().execute(
            """SELECT worker, SUM(n), SUM(r), MAX(last) FROM (
                 SELECT worker, COUNT(*) AS n, 0 AS r, MAX(ended_at) AS last
                 FROM task_attempts GROUP BY worker
                 UNION ALL
                 SELECT worker, COUNT(*), COUNT(*), MAX(started_at)
                 FROM tasks WHERE status = 'RUNNING' GROUP BY worker) AS per_worker
               GROUP BY worker"""
        ).fetchall()
        return {w: {"attempts": n, "running": int(r or 0), "last_activity_at": last}
                for w, n, r, last in rows}

    def event_tally(self, actions: Iterable[str], since: float) -> dict[tuple[str, str], int]:
        """Count of agent/system events (those not about one task) per
        (agent, action) for `actions` since `since`; served by the partial
        index ix_events_action."""
        actions = list(actions)
        if not actions:
            return {}
        rows = self._conn().execute(
            "SELECT IFNULL(agent, ''), action, COUNT(*) FROM events "  # nosec B608
            f"WHERE action IN ({','.join('?' * len(actions))}) AND task_id IS NULL AND ts >= ? "
            "GROUP BY agent, action",
            (*actions, since),
        ).fetchall()
        return {(a, act): n for a, act, n in rows}

    def last_event_per_agent(self, actions: Iterable[str]) -> dict[str, dict]:
        """The newest agent/system event (not about one task) of `actions` for
        each agent (e.g. its last exit)."""
        actions = list(actions)
        if not actions:
            return {}
        marks = ",".join("?" * len(actions))
        rows = self._conn().execute(
            "SELECT * FROM events WHERE id IN (SELECT MAX(id) FROM events "  # nosec B608
            f"WHERE action IN ({marks}) AND agent IS NOT NULL AND task_id IS NULL GROUP BY agent)",
            actions,
        ).fetchall()
        return {r["agent"]: {**dict(r), "detail": loads(r["detail"])} for r in rows}

    def oldest_ready_wait(self) -> float | None:
        """Seconds the longest-waiting claimable task has been claimable (None: none is)."""
        ts = now()
        row = self._conn().execute(
            "SELECT MIN(available_at) FROM tasks WHERE status = 'PENDING' AND deps_pending = 0 "
            "AND available_at <= ?", (ts,)
        ).fetchone()
        return None if row[0] is None else max(0.0, ts - row[0])

    def note_channels(self) -> list[dict]:
        rows = self._conn().execute(
            "SELECT channel, COUNT(*), MAX(created_at) FROM notes GROUP BY channel ORDER BY channel"
        ).fetchall()
        return [{"channel": c, "count": n, "last_at": last} for c, n, last in rows]

    def task_duration_histogram(self) -> dict[str, dict]:
        """Per skill: cumulative counts of DONE run times under each bucket bound,
        their count and sum (Prometheus histogram shape)."""
        cases = ", ".join(f"SUM(CASE WHEN d <= {b} THEN 1 ELSE 0 END)" for b in DURATION_BUCKETS)
        rows = self._conn().execute(
            f"SELECT skill, COUNT(*), SUM(d), {cases} FROM ("  # nosec B608
            "SELECT skill, CASE WHEN finished_at > started_at THEN finished_at - started_at ELSE 0 END AS d "
            "FROM tasks NOT INDEXED "  # table order, see skill_stats
            "WHERE status = 'DONE' AND started_at IS NOT NULL AND finished_at IS NOT NULL) AS runs GROUP BY skill"
        ).fetchall()
        out = {}
        for row in rows:
            skill, n, total = row[0], row[1], row[2] or 0.0
            out[skill] = {"count": n, "sum": float(total),
                          "buckets": [(b, int(c or 0)) for b, c in zip(DURATION_BUCKETS, row[3:])]}
        return out
