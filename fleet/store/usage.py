"""Model-call state shared by every process: the usage ledger (one row per
model request), provider breakers, Retry-After cool-downs, rate windows and
request spacing, and budget reservations. Nothing here relies on a single
writer: each decision is one conditional statement, or is taken under a row
lock that its transaction's first statement (an upsert) holds to commit; see
`admit_provider_request` and `reserve_budget`. The SQL is portable to PostgreSQL.
"""

from __future__ import annotations

from .errors import InvalidInput
from .values import now

USAGE_COLUMNS = ("ts", "call_id", "task_id", "skill", "agent", "provider", "model", "input_tokens",
                 "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "cache_savings_usd",
                 "latency_ms", "success", "failover_from", "reason", "error")
GROUP_COLUMNS = ("skill", "provider", "model", "agent")
_DAY = 86400.0
# Budget decisions are serialised on this row of `guards` (see reserve_budget).
_BUDGET_GUARD = "budget"


def _row(r) -> dict:
    return {k: r[k] for k in r.keys()}  # noqa: SIM118 - sqlite3.Row iterates values, not keys


class UsageMixin:
    # -- provider admission (breaker, cool-down, rate windows, spacing) ---
    def admit_provider_request(self, provider: str, *, rpm: int = 0, rpd: int = 0, headroom: float = 0.8,
                               spacing_s: float = 0.0, probe_lease_s: float = 60.0) -> dict:
        """Decide, race-free across processes, whether one request may go to
        `provider` now. Returns {"ok": True, "wait_s", "probe"} (wait_s: sleep
        this long first, for spacing; probe: this request tests a half-open
        breaker) or {"ok": False, "reason", "until"} with reason breaker_open,
        cooldown or rate_headroom.

        Atomicity: the first statement upserts the provider's row (creating it
        if new) and returns it; that write holds the row's lock until commit
        on a backend with many writers, so admissions to one provider run one
        at a time and each reads the state and request log its predecessor
        committed. (A single conditional statement cannot do this under READ
        COMMITTED: a subquery over provider_requests would read its own
        snapshot, blind to a concurrent admission.) Outcomes change the row
        with one UPDATE each (`_provider_outcome`)."""
        ts = now()
        with self._write() as conn:
            st = conn.execute(
                "INSERT INTO provider_state (provider, updated_at) VALUES (?, ?) "
                "ON CONFLICT (provider) DO UPDATE SET updated_at = provider_state.updated_at RETURNING *",
                (provider, ts)).fetchone()
            if st["opened_until"] > ts:
                return {"ok": False, "reason": "breaker_open", "until": st["opened_until"]}
            probe = bool(st["half_open"])
            if probe and st["probe_until"] > ts:
                return {"ok": False, "reason": "breaker_open", "until": st["probe_until"]}
            if st["cooldown_until"] > ts:
                return {"ok": False, "reason": "cooldown", "until": st["cooldown_until"]}
            for limit, window in ((rpm, 60.0), (rpd, _DAY)):
                if limit and limit > 0:
                    allowed = max(1, int(limit * headroom))
                    # The allowed-th newest request in the window, if there is
                    # one: the window is full until it leaves.
                    row = conn.execute(
                        "SELECT ts FROM provider_requests WHERE provider = ? AND ts > ? "
                        "ORDER BY ts DESC LIMIT 1 OFFSET ?", (provider, ts - window, allowed - 1)).fetchone()
                    if row is not None:
                        return {"ok": False, "reason": "rate_headroom", "until": row["ts"] + window}
            slot = max(ts, st["next_slot_at"])
            conn.execute(
                "UPDATE provider_state SET next_slot_at = ?, probe_until = ?, updated_at = ? WHERE provider = ?",
                (slot + spacing_s, ts + probe_lease_s if probe else 0.0, ts, provider))
            if rpm or rpd:
                conn.execute("INSERT INTO provider_requests (provider, ts) VALUES (?, ?)", (provider, slot))
                conn.execute("DELETE FROM provider_requests WHERE provider = ? AND ts < ?", (provider, ts - _DAY))
        return {"ok": True, "wait_s": slot - ts, "probe": probe}

    def _provider_outcome(self, conn, provider: str, outcome: dict, ts: float) -> None:
        """Apply a request's outcome to the provider's shared state.
        outcome: {"kind": None (success) | failure kind, "breaker": counts towards
        the breaker, "breaker_failures", "breaker_open_s", "cooldown_s", "error"}.

        Each outcome is one UPDATE computed from the row as it is (counters
        incremented in SQL, the breaker's trip decided by CASE), so outcomes
        recorded at once by many writers are all counted."""
        conn.execute("INSERT INTO provider_state (provider, updated_at) VALUES (?, ?) "
                     "ON CONFLICT (provider) DO NOTHING", (provider, ts))
        kind = outcome.get("kind")
        if outcome.get("breaker"):
            # Trips when half-open (the probe failed) or on the Nth failure in
            # a row; every right-hand side reads the row before this update.
            trips = "(half_open <> 0 OR consecutive_failures + 1 >= ?)"
            conn.execute(
                f"""UPDATE provider_state SET consecutive_failures = consecutive_failures + 1,
                       opened_until = CASE WHEN {trips} THEN ? ELSE opened_until END,
                       probe_until = CASE WHEN {trips} THEN 0 ELSE probe_until END,
                       half_open = CASE WHEN {trips} THEN 1 ELSE half_open END,
                       last_error = ?, updated_at = ? WHERE provider = ?""",
                (int(outcome.get("breaker_failures", 3)), ts + float(outcome.get("breaker_open_s", 30.0)),
                 int(outcome.get("breaker_failures", 3)), int(outcome.get("breaker_failures", 3)),
                 outcome.get("error"), ts, provider))
        elif kind == "interrupted":  # we stopped waiting: nothing learnt about the provider
            conn.execute("UPDATE provider_state SET probe_until = 0, updated_at = ? WHERE provider = ?",
                         (ts, provider))
        elif kind == "rate_limit":
            until = ts + float(outcome.get("cooldown_s", 30.0))
            conn.execute(
                "UPDATE provider_state SET cooldown_until = CASE WHEN cooldown_until > ? THEN cooldown_until "
                "ELSE ? END, probe_until = 0, last_error = ?, updated_at = ? WHERE provider = ?",
                (until, until, outcome.get("error"), ts, provider))
        else:  # success, or the server answered (bad request, missing model): it is up
            conn.execute(
                "UPDATE provider_state SET consecutive_failures = 0, opened_until = 0, half_open = 0, "
                "probe_until = 0, updated_at = ? WHERE provider = ?", (ts, provider))

    def provider_states(self) -> list[dict]:
        """Every provider's shared state (breaker, cool-down) for status pages."""
        ts = now()
        out = []
        for r in self._conn().execute("SELECT * FROM provider_state ORDER BY provider").fetchall():
            d = _row(r)
            d["breaker"] = ("open" if d["opened_until"] > ts else
                            "half_open" if d["half_open"] else "closed")
            d["cooling_down"] = d["cooldown_until"] > ts
            out.append(d)
        return out

    # -- usage ledger --------------------------------------------------------
    def record_model_call(self, row: dict, *, outcome: dict | None = None,
                          release_reservation: int | None = None) -> int:
        """Write one usage row (and, in the same transaction, the provider
        outcome and the release of a budget reservation). Returns the row id."""
        unknown = set(row) - set(USAGE_COLUMNS)
        if unknown:
            raise InvalidInput(f"unknown usage fields: {', '.join(sorted(unknown))}")
        if not row.get("provider"):
            raise InvalidInput("a usage row needs a provider")
        values = {c: row.get(c) for c in USAGE_COLUMNS}
        ts = values["ts"] = values["ts"] or now()
        for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            values[c] = int(values[c] or 0)
        for c in ("cost_usd", "cache_savings_usd"):
            values[c] = float(values[c] or 0.0)
        values["success"] = 1 if values["success"] else 0
        with self._write() as conn:
            row_id = conn.execute(
                f"INSERT INTO model_usage ({', '.join(USAGE_COLUMNS)}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))}) "
                "RETURNING id", tuple(values[c] for c in USAGE_COLUMNS)).fetchone()[0]
            if outcome is not None:
                self._provider_outcome(conn, values["provider"], outcome, ts)
            if release_reservation is not None:
                conn.execute("DELETE FROM budget_reservations WHERE id = ?", (release_reservation,))
            return row_id

    def usage_rows(self, *, task_id: int | None = None, call_id: str | None = None, skill: str | None = None,
                   since: float | None = None, limit: int = 1000) -> list[dict]:
        """Usage rows in id order, filtered."""
        clauses, params = ["1=1"], []
        for col, val in (("task_id", task_id), ("call_id", call_id), ("skill", skill)):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        rows = self._conn().execute(
            f"SELECT * FROM model_usage WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", (*params, limit))
        return [_row(r) for r in rows.fetchall()]

    def usage_summary(self, since: float, until: float | None = None, *, group_by: str = "skill") -> list[dict]:
        """Totals per skill|provider|model|agent between `since` and `until`."""
        if group_by not in GROUP_COLUMNS:
            raise InvalidInput(f"group_by must be one of {', '.join(GROUP_COLUMNS)}, not {group_by!r}")
        until = now() if until is None else until
        rows = self._conn().execute(
            f"""SELECT COALESCE({group_by}, '(none)') AS key, COUNT(*) AS requests, SUM(success) AS calls,
                       COUNT(*) - SUM(success) AS failures,
                       SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
                       SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
                       SUM(cost_usd) AS cost_usd, SUM(cache_savings_usd) AS cache_savings_usd,
                       AVG(latency_ms) AS avg_latency_ms
                FROM model_usage WHERE ts >= ? AND ts < ? GROUP BY key ORDER BY cost_usd DESC, key""",
            (since, until)).fetchall()
        return [_row(r) for r in rows]

    def usage_series(self, since: float, bucket_s: float, buckets: int) -> list[dict]:
        """Requests, tokens and cost per bucket from `since` (ix_usage_ts)."""
        if not bucket_s or bucket_s <= 0 or not 1 <= buckets <= 1000:
            raise InvalidInput("bucket_s must be above 0 and buckets 1-1000")
        out = [{"start": since + i * bucket_s, "requests": 0, "input_tokens": 0, "output_tokens": 0,
                "cost_usd": 0.0} for i in range(buckets)]
        rows = self._conn().execute(
            """SELECT CAST((ts - ?) / ? AS INTEGER) AS b, COUNT(*), COALESCE(SUM(input_tokens), 0),
                      COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0)
               FROM model_usage WHERE ts >= ? AND ts < ? GROUP BY b""",
            (since, bucket_s, since, since + bucket_s * buckets)).fetchall()
        for b, n, tin, tout, cost in rows:
            if 0 <= b < buckets:
                out[b].update(requests=int(n), input_tokens=int(tin), output_tokens=int(tout), cost_usd=float(cost))
        return out

    def usage_totals(self, since: float, *, skill: str | None = None) -> dict:
        """Spend and successful calls since `since` (one skill or all), plus live reservations."""
        ts = now()
        where, params = ("ts >= ? AND skill = ?", (since, skill)) if skill is not None else ("ts >= ?", (since,))
        with self._read() as conn:
            spent, calls = conn.execute(
                f"SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(success), 0) FROM model_usage WHERE {where}",
                params).fetchone()
            rwhere = "expires_at > ? AND skill = ?" if skill is not None else "expires_at > ?"
            rparams = (ts, skill) if skill is not None else (ts,)
            r_usd, r_calls = conn.execute(
                f"SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(calls), 0) FROM budget_reservations WHERE {rwhere}",
                rparams).fetchone()
        return {"spent_usd": float(spent), "calls": int(calls), "reserved_usd": float(r_usd),
                "reserved_calls": int(r_calls)}

    # -- budgets ---------------------------------------------------------------
    def reserve_budget(self, checks: list[dict], *, skill: str | None, usd: float, ttl_s: float = 900.0) -> dict:
        """Check every budget in `checks` and, unless one with enforcement
        'block' would be exceeded, reserve `usd` and one call — atomically.
        A check: {"name", "skill" (None: fleet-wide), "since", "limit_usd",
        "max_calls", "enforcement"}. Returns {"id" (None when nothing was
        reserved), "blocked": check-with-figures | None, "warnings": [...]}.

        Atomicity: a sum over many rows cannot be checked and added to in one
        statement under READ COMMITTED (two such inserts each read a snapshot
        without the other's row and both pass), so the transaction's first
        statement upserts the budget's row in `guards`, whose lock it holds
        to commit: reservations are decided one at a time, each reading what
        the previous one committed. Each check reads spend and reservations in
        one statement (one snapshot), so a usage row written at once with the
        release of its reservation (record_model_call) is never missed or
        counted twice."""
        ts = now()
        warnings_: list[dict] = []
        if not checks:
            return {"id": None, "blocked": None, "warnings": []}
        with self._write() as conn:
            conn.execute("INSERT INTO guards (name, taken_at) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET taken_at = excluded.taken_at", (_BUDGET_GUARD, ts))
            for check in checks:
                scope = check.get("skill")
                where, params = ("ts >= ?", [check["since"]])
                rwhere, rparams = ("expires_at > ?", [ts])
                if scope is not None:
                    where += " AND skill = ?"
                    params.append(scope)
                    rwhere += " AND skill = ?"
                    rparams.append(scope)
                spent, calls, r_usd, r_calls = conn.execute(
                    f"""SELECT COALESCE(u.spent, 0), COALESCE(u.calls, 0), COALESCE(r.usd, 0), COALESCE(r.calls, 0)
                        FROM (SELECT SUM(cost_usd) AS spent, SUM(success) AS calls FROM model_usage
                              WHERE {where}) AS u,
                             (SELECT SUM(usd) AS usd, SUM(calls) AS calls FROM budget_reservations
                              WHERE {rwhere}) AS r""",
                    (*params, *rparams)).fetchone()
                figures = dict(check, spent_usd=float(spent), calls=int(calls), reserved_usd=float(r_usd),
                               reserved_calls=int(r_calls))
                over_usd = check.get("limit_usd", 0) > 0 and spent + r_usd + usd > check["limit_usd"] + 1e-12
                over_calls = check.get("max_calls", 0) > 0 and calls + r_calls + 1 > check["max_calls"]
                if over_usd or over_calls:
                    figures["over"] = "usd" if over_usd else "calls"
                    if check.get("enforcement") == "block":
                        return {"id": None, "blocked": figures, "warnings": warnings_}
                    warnings_.append(figures)
            conn.execute("DELETE FROM budget_reservations WHERE expires_at <= ?", (ts,))
            rid = conn.execute(
                "INSERT INTO budget_reservations (skill, usd, calls, created_at, expires_at) VALUES (?,?,?,?,?) "
                "RETURNING id", (skill, float(usd), 1, ts, ts + ttl_s)).fetchone()[0]
            return {"id": rid, "blocked": None, "warnings": warnings_}

    def release_budget(self, reservation_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))


__all__ = ["USAGE_COLUMNS", "UsageMixin"]
