"""Cost intelligence: prices per model, the cost and cache savings of a call,
budget periods and checks (`[budgets]`), and the usage queries the CLI and
dashboard show (by skill/provider/model per day|week|month, deltas between
date ranges, budget status per skill). The SQL lives in fleet/store/usage.py.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

PERIODS = {"day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}


class BudgetExceeded(RuntimeError):
    """A model call was refused because a budget with enforcement 'block' is
    spent. The worker must FAIL the task with `str(exc)` as its reason (not
    retryable within the period), never store a DONE result."""

    retryable = False
    fail_reason = "budget"  # the worker fails the task with this reason and str(exc) as its error

    def __init__(self, skill: str | None, spent_usd: float, limit_usd: float, *, calls: int = 0,
                 max_calls: int = 0, scope: str = "skill", period: str = "month", over: str = "usd"):
        self.skill, self.spent_usd, self.limit_usd = skill, spent_usd, limit_usd
        self.calls, self.max_calls, self.scope, self.period = calls, max_calls, scope, period
        who = f"skill {skill}" if scope == "skill" else "the fleet"
        figures = f"${spent_usd:.4f} of ${limit_usd:.4f}" if over == "usd" else f"{calls} of {max_calls} calls"
        where = f"[budgets.skills.{skill}]" if scope == "skill" else "[budgets]"
        super().__init__(f"budget exceeded for {who}: {figures} this {period} "
                         f"(raise the limit in {where} of fleet.toml, or wait for the next {period})")


# -- prices ----------------------------------------------------------------------
def price_for(cfg: dict, model: str, *, local: bool) -> dict:
    """USD per Mtok {input, output, cache_read, cache_write} for `model`:
    the longest configured prefix; local providers cost 0 unless listed by exact name."""
    prices = cfg["prices"]
    best = ""
    if local:
        best = model if model in prices else ""
    else:
        for name in prices:
            if model.startswith(name) and len(name) > len(best):
                best = name
    if best:
        p = prices[best]
        return {k: float(p[k]) for k in ("input", "output", "cache_read", "cache_write")}
    return {"input": 0.0, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0}


def call_cost(price: dict, *, input_tokens: int, output_tokens: int, cache_read: int = 0,
              cache_write: int = 0) -> tuple[float, float]:
    """(cost_usd, cache_savings_usd) of one call. Savings: what the cache-read
    tokens would have cost as plain input, minus what they cost."""
    m = 1_000_000.0
    cost = (input_tokens * price["input"] + output_tokens * price["output"]
            + cache_read * price["cache_read"] + cache_write * price["cache_write"]) / m
    savings = cache_read * (price["input"] - price["cache_read"]) / m
    return round(cost, 10), round(max(0.0, savings), 10)


def estimate_cost(price: dict, prompt_chars: int, max_tokens: int) -> float:
    """A ceiling for a call's cost before it is made (about 4 characters per token)."""
    return ((prompt_chars / 4.0 + 16) * price["input"] + max_tokens * price["output"]) / 1_000_000.0


# -- periods -----------------------------------------------------------------------
def period_start(period: str, *, now: float | None = None) -> float:
    """Start (epoch s) of the current UTC calendar day, ISO week or month."""
    t = _dt.datetime.fromtimestamp(now if now is not None else _dt.datetime.now().timestamp(), _dt.UTC)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start = day
    elif period == "week":
        start = day - _dt.timedelta(days=day.weekday())
    elif period == "month":
        start = day.replace(day=1)
    else:
        raise ValueError(f"period must be day, week or month, not {period!r}")
    return start.timestamp()


def budget_checks(cfg: dict, skill: str | None, *, now: float | None = None) -> list[dict]:
    """The budgets that apply to a call by `skill`: its own and the global one."""
    b = cfg["budgets"]
    checks = []
    default_period, default_enf = b["period"], b["enforcement"]
    per_skill = b["skills"].get(skill) if skill else None
    if per_skill and (per_skill["limit_usd"] > 0 or per_skill["max_calls"] > 0):
        period = per_skill["period"] or default_period
        checks.append({"name": f"skill {skill}", "scope": "skill", "skill": skill, "period": period,
                       "since": period_start(period, now=now), "limit_usd": float(per_skill["limit_usd"]),
                       "max_calls": int(per_skill["max_calls"]),
                       "enforcement": per_skill["enforcement"] or default_enf})
    if b["global_usd"] > 0 or b["global_calls"] > 0:
        checks.append({"name": "fleet", "scope": "global", "skill": None, "period": default_period,
                       "since": period_start(default_period, now=now), "limit_usd": float(b["global_usd"]),
                       "max_calls": int(b["global_calls"]), "enforcement": default_enf})
    return checks


def exceeded_error(figures: dict, skill: str | None) -> BudgetExceeded:
    """The BudgetExceeded for a blocked check from `Store.reserve_budget`."""
    return BudgetExceeded(skill, figures["spent_usd"] + figures["reserved_usd"], figures["limit_usd"],
                          calls=figures["calls"] + figures["reserved_calls"], max_calls=figures["max_calls"],
                          scope=figures["scope"], period=figures["period"], over=figures.get("over", "usd"))


def budget_status(cfg: dict, store, *, now: float | None = None) -> list[dict]:
    """Every configured budget with spend, calls, percent used and state
    (ok | warning (>= 80 %) | exceeded), for the periods containing `now`."""
    names = sorted(cfg["budgets"]["skills"])
    out = []
    for skill in names + [None]:
        for check in budget_checks(cfg, skill, now=now):
            if skill is None and check["scope"] != "global":
                continue
            if skill is not None and check["scope"] != "skill":
                continue
            totals = store.usage_totals(check["since"], skill=check["skill"])
            used = []
            if check["limit_usd"] > 0:
                used.append(totals["spent_usd"] / check["limit_usd"])
            if check["max_calls"] > 0:
                used.append(totals["calls"] / check["max_calls"])
            pct = round(100.0 * max(used), 1) if used else 0.0
            out.append({"budget": check["name"], "skill": check["skill"], "period": check["period"],
                        "since": check["since"], "enforcement": check["enforcement"],
                        "limit_usd": check["limit_usd"], "max_calls": check["max_calls"],
                        "spent_usd": round(totals["spent_usd"], 6), "calls": totals["calls"],
                        "percent_used": pct,
                        "state": "exceeded" if pct >= 100 else "warning" if pct >= 80 else "ok"})
    return out


# -- usage queries -------------------------------------------------------------------
def usage_report(store, *, period: str = "day", group_by: str = "skill", now: float | None = None) -> dict:
    """Usage over the last day|week|month (rolling), grouped by skill|provider|model."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    end = now if now is not None else _dt.datetime.now().timestamp()
    rows = store.usage_summary(end - PERIODS[period], end + 1e-6, group_by=group_by)
    totals = {k: sum((r[k] or 0) for r in rows) for k in ("requests", "calls", "failures", "input_tokens",
                                                            "output_tokens", "cache_read_tokens",
                                                            "cache_write_tokens", "cost_usd", "cache_savings_usd")}
    return {"period": period, "group_by": group_by, "since": end - PERIODS[period], "until": end,
            "rows": rows, "totals": totals}


def parse_when(value: Any) -> float:
    """An ISO 8601 date/time (UTC when no zone) or epoch seconds -> epoch seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date (e.g. 2026-01-31 or 2026-01-31T12:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


def usage_delta(store, a_start, a_end, b_start, b_end, *, group_by: str = "skill") -> dict:
    """Compare usage in [a_start, a_end) (before) with [b_start, b_end) (after)."""
    a = {r["key"]: r for r in store.usage_summary(parse_when(a_start), parse_when(a_end), group_by=group_by)}
    b = {r["key"]: r for r in store.usage_summary(parse_when(b_start), parse_when(b_end), group_by=group_by)}
    rows = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key) or {}, b.get(key) or {}
        row = {"key": key}
        for field in ("calls", "input_tokens", "output_tokens", "cost_usd"):
            x, y = float(before.get(field) or 0), float(after.get(field) or 0)
            row[field] = {"before": x, "after": y, "delta": y - x,
                          "delta_pct": None if x == 0 else round(100.0 * (y - x) / x, 1),
                          "direction": "up" if y > x else "down" if y < x else "flat"}
        rows.append(row)
    return {"group_by": group_by, "before": [a_start, a_end], "after": [b_start, b_end], "rows": rows}
