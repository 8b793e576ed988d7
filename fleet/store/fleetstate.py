"""Fleet state beside the queue: agents, messages, notes, alerts, the audit
log of events, fleet-wide flags, named locks and liveness samples."""

from __future__ import annotations

from typing import Any

from .errors import InvalidInput, NotFound
from .schema import ALERT_SEVERITIES
from .task_model import check_name
from .values import dumps, loads, now

CHANNELS = ("fleet", "sup", "agent", "pool")
# A worker flips between these around every task: the agent row shows the
# state, and an event per flip would bury the activity feed.
_ROUTINE_STATES = ("busy", "idle")
_UNSET: Any = object()


def _row(r) -> dict:
    return {k: r[k] for k in r.keys()}


# Append-only tables whose ids grow with a time column: {table: column}.
_TIME_ORDERED = {"events": "ts", "task_attempts": "ended_at"}


class FleetStateMixin:
    # -- events (append-only audit) -------------------------------------
    def _event(self, conn, actor, action, *, task_id=None, agent=None, detail=None, ts=None):
        conn.execute(
            "INSERT INTO events (ts, actor, action, task_id, agent, detail) VALUES (?,?,?,?,?,?)",
            (ts or now(), actor or "unknown", action, task_id, agent,
             None if detail is None else dumps(detail, "event detail")),
        )

    def record_event(self, actor: str, action: str, *, task_id=None, agent=None, detail=None) -> None:
        with self._write() as conn:
            self._event(conn, actor, action, task_id=task_id, agent=agent, detail=detail)

    def events(self, *, after_id: int = 0, task_id=None, agent=None, action=None,
               since: float | None = None, limit: int = 100) -> list[dict]:
        """Events in id order after `after_id` (for streams and audits)."""
        clauses, params = ["id > ?"], [after_id]
        for col, val in (("task_id", task_id), ("agent", agent), ("action", action)):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            clauses += ["id >= ?", "ts >= ?"]
            params += [self._event_id_range(since, None)[0], since]
        rows = self._conn().execute(
            f"SELECT * FROM events WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", (*params, limit)
        ).fetchall()
        out = []
        for r in rows:
            d = _row(r)
            d["detail"] = loads(d["detail"])
            out.append(d)
        return out

    def recent_events(self, limit: int = 100, **filters) -> list[dict]:
        """The newest events, newest first."""
        clauses, params = [], []
        for col in ("task_id", "agent", "action"):
            if filters.get(col) is not None:
                clauses.append(f"{col} = ?")
                params.append(filters[col])
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._conn().execute(
            f"SELECT * FROM events{where} ORDER BY id DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [{**_row(r), "detail": loads(r["detail"])} for r in rows]

    # Events and finished attempts carry no time index (they are written on
    # the queue's hot path), but both are appended in time order, so a time
    # window becomes an id window by binary search on the primary key. Times
    # can run a little out of id order (they are taken before the write lock),
    # so the window is widened by a slack and callers keep their time test.
    _TIME_SLACK_S = 60.0

    def _id_range(self, table: str, since: float | None, until: float | None) -> tuple[int, int]:
        """(lo, hi): every row of `table` with since <= time < until has lo <= id <= hi."""
        col = _TIME_ORDERED[table]  # only these two tables; names are constants
        conn = self._conn()
        first, last = conn.execute(
            f"SELECT IFNULL(MIN(id), 1), IFNULL(MAX(id), 0) FROM {table}"  # nosec B608
        ).fetchone()
        probe = f"SELECT id, {col} FROM {table} WHERE id >= ? ORDER BY id LIMIT 1"  # nosec B608

        def first_id_at(ts: float) -> int:  # smallest id whose time >= ts (or last + 1)
            lo, hi = first, last + 1
            while lo < hi:
                mid = (lo + hi) // 2
                row = conn.execute(probe, (mid,)).fetchone()
                if row is None or row[1] >= ts:
                    hi = mid
                else:
                    lo = row[0] + 1
            return lo

        lo = first if since is None else first_id_at(since - self._TIME_SLACK_S)
        hi = last if until is None else first_id_at(until + self._TIME_SLACK_S)
        return lo, hi

    def _event_id_range(self, since: float | None, until: float | None) -> tuple[int, int]:
        return self._id_range("events", since, until)

    def last_event_id(self) -> int:
        return self._conn().execute("SELECT IFNULL(MAX(id), 0) FROM events").fetchone()[0]

    # -- agents ----------------------------------------------------------
    def register_agent(self, name: str, role: str, *, pid: int | None = None,
                       host: str | None = None, status: str = "starting",
                       config_hash: str | None = None) -> dict:
        ts = now()
        with self._write() as conn:
            conn.execute(
                """INSERT INTO agents (name, role, host, pid, status, current_task, started_at,
                       last_heartbeat, progress, detail)
                   VALUES (?,?,?,?,?,NULL,?,?,0,NULL)
                   ON CONFLICT(name) DO UPDATE SET role = excluded.role, host = excluded.host,
                       pid = excluded.pid, status = excluded.status, current_task = NULL,
                       started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat,
                       progress = 0""",
                (name, role, host or self.host, pid, status, ts, ts),
            )
            detail = {"role": role, "pid": pid, **({"config_hash": config_hash} if config_hash else {})}
            self._event(conn, name, "agent_start", agent=name, detail=detail, ts=ts)
        return self.get_agent(name)

    def heartbeat(self, name: str, *, progress: int | None = None, status: str | None = None,
                  current_task: Any = _UNSET, detail: Any = _UNSET) -> None:
        """Record liveness; `progress` is a counter that grows while work advances."""
        sets, params = ["last_heartbeat = ?"], [now()]
        if progress is not None:
            sets.append("progress = ?")
            params.append(progress)
        if status is not None:
            sets.append("status = ?")
            params.append(status)
        if current_task is not _UNSET:
            sets.append("current_task = ?")
            params.append(current_task)
        if detail is not _UNSET:
            sets.append("detail = ?")
            params.append(None if detail is None else dumps(detail, "agent detail"))
        with self._write() as conn:
            if status is None or status in _ROUTINE_STATES:
                conn.execute(f"UPDATE agents SET {', '.join(sets)} WHERE name = ?", (*params, name))
                return
            # A change into a state a person must be able to trace (paused,
            # stopped, ...) is an event.
            old = self._swap_agent(conn, name, sets, params)
            if old is not None and old != status:
                self._event(conn, name, "agent_status", agent=name, detail={"from": old, "to": status})

    @staticmethod
    def _swap_agent(conn, name: str, sets: list[str], params: list) -> str | None:
        """Write an agent's fields and return the status it had (None: no such
        agent), compare-and-set: the write applies only while the status is
        the one read, so two writers at once never both report one change."""
        while True:
            row = conn.execute("SELECT status FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            if conn.execute(f"UPDATE agents SET {', '.join(sets)} WHERE name = ? AND status = ? RETURNING 1",
                            (*params, name, row[0])).fetchone() is not None:
                return row[0]

    def set_agent_status(self, name: str, status: str, *, actor: str = "supervisor", detail=None) -> None:
        with self._write() as conn:
            old = self._swap_agent(conn, name, ["status = ?"], [status])
            if old is not None and (old != status or detail):
                self._event(conn, actor, "agent_status", agent=name,
                            detail={"from": old, "to": status, **(detail or {})})

    def get_agent(self, name: str) -> dict | None:
        r = self._conn().execute("SELECT * FROM agents WHERE name = ?", (name,)).fetchone()
        if r is None:
            return None
        d = _row(r)
        d["detail"] = loads(d["detail"])
        return d

    def list_agents(self) -> list[dict]:
        rows = self._conn().execute("SELECT * FROM agents ORDER BY name").fetchall()
        return [{**_row(r), "detail": loads(r["detail"])} for r in rows]

    def remove_agent(self, name: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM agents WHERE name = ?", (name,))

    # -- messages --------------------------------------------------------
    def _check_channel(self, channel: str) -> str:
        if channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
        return channel

    def _body_text(self, body: Any, what: str) -> str:
        """A message or note body as stored: a non-empty string, or any
        JSON-serialisable value, at most [queue] max_payload_bytes."""
        if isinstance(body, str):  # (a lone surrogate is refused where it is bound, like every text)
            if not body.strip():
                raise InvalidInput(f"a {what} must not be empty")
            if (len(body) > self.max_payload_bytes // 4
                    and len(body.encode("utf-8", "surrogatepass")) > self.max_payload_bytes):
                raise InvalidInput(f"a {what} is over the limit of {self.max_payload_bytes} bytes "
                                   "([queue] max_payload_bytes); put large data in a file and send its path")
            return body
        return dumps(body, what, self.max_payload_bytes)

    def send_message(self, sender: str, recipient: str, body: Any, *, channel: str = "agent") -> int:
        """Queue a message; `body` is a string or a JSON-serialisable value."""
        self._check_channel(channel)
        check_name(sender, "sender")
        check_name(recipient, "recipient (an agent name)")
        text = self._body_text(body, "message body")
        with self._write() as conn:
            mid = conn.execute(
                "INSERT INTO messages (sender, recipient, channel, body, created_at) VALUES (?,?,?,?,?) RETURNING id",
                (sender, recipient, channel, text, now()),
            ).fetchone()[0]
        self.notify()
        return mid

    def broadcast(self, sender: str, body: Any, *, channel: str = "fleet") -> list[int]:
        """One message to every registered agent (one statement: the agents
        read are the agents written to). Returns the ids in agent-name order."""
        self._check_channel(channel)
        check_name(sender, "sender")
        text = self._body_text(body, "message body")
        with self._write() as conn:
            rows = conn.execute(
                """INSERT INTO messages (sender, recipient, channel, body, created_at)
                   SELECT ?, name, ?, ?, ? FROM agents ORDER BY name RETURNING id""",
                (sender, channel, text, now()),
            ).fetchall()
        self.notify()
        return sorted(r[0] for r in rows)  # RETURNING's order is unspecified; ids follow the name order

    def inbox(self, recipient: str, *, unread_only: bool = True, limit: int = 50,
              channel: str | None = None, mark_read: bool = False) -> list[dict]:
        clauses, params = ["recipient = ?"], [recipient]
        if unread_only:
            clauses.append("read_at IS NULL")
        if channel is not None:
            clauses.append("channel = ?")
            params.append(self._check_channel(channel))
        sql = f"SELECT * FROM messages WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?"
        if not mark_read:
            return [_row(r) for r in self._conn().execute(sql, (*params, limit)).fetchall()]
        if unread_only:
            # Take the messages: one UPDATE that re-checks read_at, so two
            # readers of one inbox at once never both get a message. Rows come
            # back as they were read (unread: read_at None).
            with self._write() as conn:
                taken = conn.execute(
                    f"""UPDATE messages SET read_at = ? WHERE read_at IS NULL AND id IN
                            (SELECT id FROM messages WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?)
                        RETURNING *""",
                    (now(), *params, limit),
                ).fetchall()
            return sorted(({**_row(r), "read_at": None} for r in taken), key=lambda m: m["id"])
        with self._write() as conn:
            rows = [_row(r) for r in conn.execute(sql, (*params, limit)).fetchall()]
            if rows:
                conn.execute(
                    "UPDATE messages SET read_at = ? WHERE id IN (%s)" % ",".join("?" * len(rows)),
                    (now(), *[r["id"] for r in rows]),
                )
        return rows

    def messages(self, *, channel: str | None = None, limit: int = 100, after_id: int = 0,
                 before_id: int | None = None, agent: str | None = None) -> list[dict]:
        """Message history across agents (newest last)."""
        clauses, params = ["id > ?"], [after_id]
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        if agent is not None:
            clauses.append("(sender = ? OR recipient = ?)")
            params += [agent, agent]
        if channel is not None:
            clauses.append("channel = ?")
            params.append(self._check_channel(channel))
        rows = self._conn().execute(
            f"SELECT * FROM (SELECT * FROM messages WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
            (*params, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    # -- notes (channel scratchpad) --------------------------------------
    def post_note(self, channel: str, body: Any, *, author: str = "operator") -> int:
        check_name(channel, "a note channel")
        check_name(author, "author")
        text = self._body_text(body, "note body")
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO notes (channel, author, body, created_at) VALUES (?,?,?,?) RETURNING id",
                (channel, author, text, now()),
            ).fetchone()[0]

    def notes(self, channel: str, *, since: float | None = None, limit: int = 50) -> list[dict]:
        clauses, params = ["channel = ?"], [channel]
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since)
        rows = self._conn().execute(
            f"SELECT * FROM (SELECT * FROM notes WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
            (*params, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    # -- alerts ----------------------------------------------------------
    def raise_alert(self, severity: str, component: str, message: str, *, dedup_key: str | None = None) -> int:
        """Open an alert, or bump the open one with the same dedup key."""
        if severity not in ALERT_SEVERITIES:
            raise InvalidInput(f"alert severity must be one of {', '.join(ALERT_SEVERITIES)}, got {severity!r}")
        key = dedup_key or f"{component}:{message}"
        ts = now()
        with self._write() as conn:
            # One statement decides open-or-bump, against the partial unique
            # index ux_alerts_open; occurrences = 1 only on the insert.
            aid, occurrences = conn.execute(
                """INSERT INTO alerts (severity, component, message, dedup_key, created_at, updated_at, host)
                   VALUES (?,?,?,?,?,?,?)
                   ON CONFLICT (dedup_key) WHERE acked_at IS NULL DO UPDATE SET
                       occurrences = alerts.occurrences + 1, updated_at = excluded.updated_at,
                       message = excluded.message, severity = excluded.severity
                   RETURNING id, occurrences""",
                (severity, component, message, key, ts, ts, self.host),
            ).fetchone()
            if occurrences == 1:
                self._event(conn, component, "alert", detail={"id": aid, "severity": severity, "message": message},
                            ts=ts)
        return aid

    def ack_alert(self, alert_id: int, *, by: str = "operator") -> dict:
        """Acknowledge an open alert (once: a second ack changes nothing) and
        return its row."""
        with self._write() as conn:
            row = conn.execute(
                "UPDATE alerts SET acked_at = ?, acked_by = ? WHERE id = ? AND acked_at IS NULL RETURNING *",
                (now(), by, alert_id),
            ).fetchone()
            if row is not None:
                self._event(conn, by, "alert_ack", detail={"id": alert_id})
                return _row(row)
            row = conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise NotFound(f"alert {alert_id} does not exist")
            return _row(row)

    def list_alerts(self, *, active_only: bool = True, limit: int = 100) -> list[dict]:
        where = " WHERE acked_at IS NULL" if active_only else ""
        rows = self._conn().execute(
            f"SELECT * FROM alerts{where} ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_row(r) for r in rows]

    # -- flags -----------------------------------------------------------
    def set_flag(self, name: str, value: Any, *, by: str = "operator") -> None:
        text = dumps(value, f"flag {name}")
        with self._write() as conn:
            conn.execute(
                """INSERT INTO flags (name, value, updated_at, updated_by) VALUES (?,?,?,?)
                   ON CONFLICT(name) DO UPDATE SET value = excluded.value,
                       updated_at = excluded.updated_at, updated_by = excluded.updated_by""",
                (name, text, now(), by),
            )
            self._event(conn, by, "flag", detail={"name": name, "value": value})
        self.notify()

    def get_flag(self, name: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM flags WHERE name = ?", (name,)).fetchone()
        return default if row is None else loads(row[0])

    # -- named locks (e.g. the training lock) ----------------------------
    def acquire_lock(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the lock if free or expired (or already ours: then extend it).
        One upsert decides: its WHERE lets it through only for the holder or
        over an expired lock, so of many takers at once exactly one wins."""
        ts = now()
        with self._write() as conn:
            row = conn.execute(
                """INSERT INTO locks (name, holder, acquired_at, expires_at) VALUES (?,?,?,?)
                   ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,
                       acquired_at = CASE WHEN locks.holder = excluded.holder THEN locks.acquired_at
                                          ELSE excluded.acquired_at END,
                       expires_at = excluded.expires_at
                   WHERE locks.holder = excluded.holder OR locks.expires_at <= excluded.acquired_at
                   RETURNING acquired_at""",
                (name, holder, ts, ts + ttl_s),
            ).fetchone()
            if row is None:
                return False
            if row[0] == ts:  # taken now (an extension keeps the earlier acquired_at)
                self._event(conn, holder, "lock_acquired", detail={"lock": name})
        return True

    def release_lock(self, name: str, holder: str | None = None) -> bool:
        """Release; with `holder` only if it holds it (None forces, for operators)."""
        with self._write() as conn:
            if holder is None:
                cur = conn.execute("DELETE FROM locks WHERE name = ?", (name,))
            else:
                cur = conn.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))
            if cur.rowcount:
                self._event(conn, holder or "operator", "lock_released", detail={"lock": name})
        self.notify()
        return bool(cur.rowcount)

    def lock_holder(self, name: str) -> dict | None:
        row = self._conn().execute(
            "SELECT * FROM locks WHERE name = ? AND expires_at > ?", (name, now())
        ).fetchone()
        return None if row is None else _row(row)

    # -- liveness samples (uptime reports) -------------------------------
    def record_liveness(self, expected: int, alive: int, busy: int, *, ts: float | None = None) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO liveness (ts, expected, alive, busy) VALUES (?,?,?,?)",
                (ts if ts is not None else now(), expected, alive, busy),
            )

    def liveness_samples(self, since: float, until: float | None = None) -> list[dict]:
        rows = self._conn().execute(
            "SELECT * FROM liveness WHERE ts >= ? AND ts < ? ORDER BY ts",
            (since, until if until is not None else now() + 1),
        ).fetchall()
        return [_row(r) for r in rows]
