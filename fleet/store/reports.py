"""Read-only queries for reports: per-day task outcomes, worker restarts,
busy time. Nothing here writes. (Checking a backup copy is the backend's
`check_backup`.)
"""

from __future__ import annotations

DAY_S = 86400.0


class ReportsMixin:
    """Aggregate queries for the phase report (fleet.report)."""

    def task_outcomes_by_day(self, since: float, until: float) -> list[dict]:
        """Per UTC day in [since, until): tasks finished DONE, FAILED (final) and
        attempts that ended in a retry. Days are counted from `since`."""
        conn = self._conn()
        out: dict[int, dict] = {}

        def bucket(day: int) -> dict:
            return out.setdefault(day, {"day_start": since + day * DAY_S, "done": 0, "failed": 0,
                                        "cancelled": 0, "retried": 0})

        for day, status, n in self._finished_per_bucket(since, DAY_S, until):  # (monitoring.py)
            bucket(day)[status.lower()] += n
        # A retry: an attempt that failed (error, timeout, crash, expired lease)
        # and was followed by another attempt of the same task.
        rows = conn.execute(
            """SELECT CAST((a.ended_at - ?) / ? AS INTEGER) AS d, COUNT(*)
               FROM task_attempts a
               WHERE a.id BETWEEN ? AND ? AND a.ended_at >= ? AND a.ended_at < ?
                 AND a.outcome NOT IN ('done', 'released', 'deferred', 'waiting_human', 'cancelled', 'running')
                 AND (EXISTS (SELECT 1 FROM task_attempts b
                              WHERE b.task_id = a.task_id AND b.id > a.id)
                      OR EXISTS (SELECT 1 FROM tasks t
                                 WHERE t.id = a.task_id AND t.status = 'RUNNING'))
               GROUP BY d""",
            (since, DAY_S, *self._id_range("task_attempts", since, until), since, until),
        ).fetchall()
        for day, n in rows:
            bucket(day)["retried"] += n
        return [out[d] for d in sorted(out)]

    def unplanned_exits_by_day(self, since: float, until: float, *, action: str = "child_exit",
                               planned: tuple = ("drain", "stop", "scale_down", "restart")) -> dict[int, int]:
        """Per UTC day (counted from `since`): child exits the supervisor recorded
        that nobody asked for (crashes, timeouts, stalls), i.e. restarts."""
        rows = self._conn().execute(
            "SELECT CAST((ts - ?) / ? AS INTEGER) AS d, COUNT(*) FROM events "
            "WHERE id BETWEEN ? AND ? AND ts >= ? AND ts < ? AND action = ? "
            "AND (json_extract(detail, '$.intent') IS NULL "
            f"OR json_extract(detail, '$.intent') NOT IN ({','.join('?' * len(planned))})) GROUP BY d",  # nosec B608
            (since, DAY_S, *self._event_id_range(since, until), since, until, action, *planned),
        ).fetchall()
        return {d: n for d, n in rows}

    def oldest_pending_created_at(self) -> float | None:
        """created_at of the lowest-id PENDING task: one index probe (ids grow
        with creation time), where MIN(created_at) reads every pending row."""
        row = self._conn().execute(
            "SELECT created_at FROM tasks WHERE status = 'PENDING' ORDER BY id LIMIT 1"
        ).fetchone()
        return None if row is None else row[0]
