"""Cost endpoints over the model-usage ledger (present where the store keeps
one): /api/usage, /api/usage/delta, /api/usage/budgets; the model providers'
circuit-breaker state for /api/health; model metrics for /metrics.
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .common import choice_arg, ctx, doc, int_arg, parse_time
from .params import TIME_SCHEMA

GROUPS = ("skill", "provider", "model", "agent")
PERIODS = ("day", "week", "month")


def usage_metrics(c):
    """Prometheus families for model calls, tokens and cost."""
    rows = c.store.usage_summary(0.0, time.time() + 1, group_by="provider")
    calls = CounterMetricFamily("fleet_model_calls", "Model requests by provider and outcome",
                                labels=["provider", "outcome"])
    tokens = CounterMetricFamily("fleet_model_tokens", "Model tokens by provider and kind",
                                 labels=["provider", "kind"])
    cost = CounterMetricFamily("fleet_model_cost_usd", "Model spend in USD by provider", labels=["provider"])
    for r in rows:
        p = str(r["key"])
        calls.add_metric([p, "success"], r["calls"] or 0)
        calls.add_metric([p, "failure"], r["failures"] or 0)
        for kind in ("input", "output", "cache_read", "cache_write"):
            tokens.add_metric([p, kind], r[f"{kind}_tokens"] or 0)
        cost.add_metric([p], float(r["cost_usd"] or 0.0))
    yield calls
    yield tokens
    yield cost
    breaker = GaugeMetricFamily("fleet_model_breaker_open", "1 while a provider's circuit breaker is open",
                                labels=["provider"])
    for s in c.store.provider_states():
        breaker.add_metric([s["provider"]], 1.0 if s["breaker"] == "open" else 0.0)
    yield breaker


def install(app, c) -> None:
    from fleet import costs

    bp = Blueprint("usage", __name__)

    @bp.get("/api/usage")
    @doc("Token usage and cost for the last day, week or month, grouped by skill, provider, model or agent",
         tag="usage", query={"period": {"type": "string", "enum": list(PERIODS)},
                             "group_by": {"type": "string", "enum": list(GROUPS)}})
    def usage():
        period = choice_arg("period", PERIODS, "day")
        group_by = choice_arg("group_by", GROUPS, "skill")
        return jsonify(costs.usage_report(ctx().store, period=period, group_by=group_by))

    @bp.get("/api/usage/delta")
    @doc("Usage compared between two date ranges (before: a_start..a_end, after: b_start..b_end); "
         "default: the previous day against the last day", tag="usage", query={
             "a_start": TIME_SCHEMA, "a_end": TIME_SCHEMA, "b_start": TIME_SCHEMA, "b_end": TIME_SCHEMA,
             "group_by": {"type": "string", "enum": list(GROUPS)}})
    def usage_delta():
        now = time.time()
        defaults = {"a_start": now - 2 * 86400, "a_end": now - 86400, "b_start": now - 86400, "b_end": now}
        bounds = {}
        for key, default in defaults.items():
            value = parse_time(request.args.get(key), f"query parameter {key!r}")
            bounds[key] = default if value is None else value
        # a range that ends before it starts holds nothing (an empty range, not an error)
        bounds["a_start"] = min(bounds["a_start"], bounds["a_end"])
        bounds["b_start"] = min(bounds["b_start"], bounds["b_end"])
        return jsonify(costs.usage_delta(ctx().store, bounds["a_start"], bounds["a_end"], bounds["b_start"],
                                         bounds["b_end"], group_by=choice_arg("group_by", GROUPS, "skill")))

    @bp.get("/api/usage/regression")
    @doc("Cost regression analysis: cost per successful call in the last period against the period before, "
         "flagging rises over threshold_pct", tag="usage",
         query={"period": {"type": "string", "enum": ["day", "week"]},
                "group_by": {"type": "string", "enum": list(GROUPS)},
                "threshold_pct": {"type": "integer", "minimum": 1, "maximum": 1000}})
    def usage_regression():
        c = ctx()
        span = {"day": 86400.0, "week": 7 * 86400.0}[choice_arg("period", ("day", "week"), "week")]
        group_by = choice_arg("group_by", GROUPS, "skill")
        threshold = int_arg("threshold_pct", 25, lo=1, hi=1000)
        now = time.time()
        before = {r["key"]: r for r in c.store.usage_summary(now - 2 * span, now - span, group_by=group_by)}
        after = {r["key"]: r for r in c.store.usage_summary(now - span, now + 1e-6, group_by=group_by)}
        rows = []
        for key in sorted(set(before) | set(after)):
            b, a = before.get(key) or {}, after.get(key) or {}
            per_b = (b.get("cost_usd") or 0) / b["calls"] if b.get("calls") else None
            per_a = (a.get("cost_usd") or 0) / a["calls"] if a.get("calls") else None
            change = None if not per_b or per_a is None else round(100.0 * (per_a - per_b) / per_b, 1)
            rows.append({"key": key, "calls_before": b.get("calls") or 0, "calls_after": a.get("calls") or 0,
                         "cost_per_call_before": per_b, "cost_per_call_after": per_a, "change_pct": change,
                         "regressed": change is not None and change >= threshold})
        rows.sort(key=lambda r: -(r["change_pct"] or 0))
        return jsonify({"group_by": group_by, "period_s": span, "threshold_pct": threshold,
                        "regressions": [r for r in rows if r["regressed"]], "rows": rows})

    @bp.get("/api/usage/series")
    @doc("Model requests, tokens and cost per UTC day for the last `days` days (today included), "
         "oldest first, for the Usage page's charts", tag="usage",
         query={"days": {"type": "integer", "minimum": 1, "maximum": 366}})
    def usage_series():
        days = int_arg("days", 14, lo=1, hi=366)
        since = (time.time() // 86400 - (days - 1)) * 86400  # midnight UTC, days - 1 days ago
        return jsonify({"since": since, "bucket_s": 86400, "days": ctx().store.usage_series(since, 86400.0, days)})

    @bp.get("/api/usage/budgets")
    @doc("Budget status per skill (and global): spend, calls, percent used, ok | warning | exceeded",
         tag="usage")
    def usage_budgets():
        c = ctx()
        return jsonify({"budgets": costs.budget_status(c.cfg, c.store)})

    app.register_blueprint(bp)
