"""Usage ledger queries for the CLI and dashboard (by skill/provider/model
per day|week|month, the delta between two date ranges, budget status), the
cost arithmetic, budget periods and the provider-type plumbing."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from fleet.config import load_config
from fleet.costs import (
    BudgetExceeded,
    budget_status,
    call_cost,
    parse_when,
    period_start,
    price_for,
    usage_delta,
    usage_report,
)
from fleet.db import open_store
from fleet.providers import ProviderError, available_types, provider_class
from fleet.providers.base import classify_status, parse_retry_after

DAY = 86400.0


def _row(ts, skill, provider="claude", model="claude-sonnet-4-6", cost=0.01, success=True, **kw):
    return dict({"ts": ts, "skill": skill, "provider": provider, "model": model, "input_tokens": 100,
                 "output_tokens": 10, "cost_usd": cost, "success": success, "latency_ms": 5.0}, **kw)


@pytest.fixture
def ledger(isolated_home):
    (isolated_home / "fleet.toml").write_text(
        '[budgets]\nglobal_usd = 1.0\nperiod = "month"\n'
        '[budgets.skills.summarize]\nlimit_usd = 0.05\nperiod = "day"\nenforcement = "block"\n'
        '[budgets.skills.code_review]\nmax_calls = 10\n')
    cfg = load_config(isolated_home)
    store = open_store(cfg)
    # A fixed mid-month noon: "today" and "this month" never straddle midnight.
    now = dt.datetime(2026, 3, 25, 12, tzinfo=dt.UTC).timestamp()
    for ts, skill, provider, cost, ok in [
        (now - 60, "summarize", "claude", 0.02, True), (now - 120, "summarize", "claude", 0.02, True),
        (now - 180, "summarize", "ollama", 0.0, False), (now - 240, "code_review", "ollama", 0.0, True),
        (now - 3 * DAY, "code_review", "claude", 0.10, True), (now - 20 * DAY, "summarize", "claude", 0.50, True),
    ]:
        store.record_model_call(_row(ts, skill, provider=provider, cost=cost, success=ok,
                                     model="qwen3:8b" if provider == "ollama" else "claude-sonnet-4-6"))
    return cfg, store, now


def test_usage_by_skill_provider_model_per_period(ledger):
    _cfg, store, now = ledger
    day = usage_report(store, period="day", group_by="skill", now=now)
    by = {r["key"]: r for r in day["rows"]}
    assert set(by) == {"summarize", "code_review"}
    assert (by["summarize"]["requests"], by["summarize"]["calls"], by["summarize"]["failures"]) == (3, 2, 1)
    assert by["summarize"]["cost_usd"] == pytest.approx(0.04)
    assert day["totals"]["cost_usd"] == pytest.approx(0.04)
    week = usage_report(store, period="week", group_by="provider", now=now)
    assert {r["key"]: round(r["cost_usd"], 4) for r in week["rows"]} == {"claude": 0.14, "ollama": 0.0}
    month = usage_report(store, period="month", group_by="model", now=now)
    assert month["totals"]["requests"] == 6
    assert {r["key"] for r in month["rows"]} == {"claude-sonnet-4-6", "qwen3:8b"}
    with pytest.raises(ValueError, match="period must be one of"):
        usage_report(store, period="year")


def test_usage_delta_between_two_date_ranges(ledger):
    _cfg, store, now = ledger
    delta = usage_delta(store, now - 30 * DAY, now - 2 * DAY, now - 2 * DAY, now + 1)
    rows = {r["key"]: r for r in delta["rows"]}
    s = rows["summarize"]["cost_usd"]
    assert (s["before"], s["after"], s["direction"]) == (0.5, 0.04, "down")
    assert s["delta_pct"] == pytest.approx(-92.0)
    c = rows["code_review"]["calls"]
    assert (c["before"], c["after"], c["direction"]) == (1, 1, "flat")
    day = dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()
    assert parse_when(day) == period_start("day", now=now)
    with pytest.raises(ValueError, match="not an ISO date"):
        parse_when("yesterday-ish")


def test_budget_status_per_skill_and_fleet(ledger):
    cfg, store, now = ledger
    status = {b["budget"]: b for b in budget_status(cfg, store, now=now)}
    assert status["skill summarize"]["spent_usd"] == pytest.approx(0.04)
    assert (status["skill summarize"]["percent_used"], status["skill summarize"]["state"]) == (80.0, "warning")
    assert status["skill summarize"]["enforcement"] == "block" and status["skill summarize"]["period"] == "day"
    assert status["skill code_review"]["max_calls"] == 10
    assert status["fleet"]["limit_usd"] == 1.0 and status["fleet"]["enforcement"] == "warn"


def test_budget_reservation_blocks_then_frees(ledger):
    _cfg, store, now = ledger
    checks = [{"name": "skill s", "scope": "skill", "skill": "s", "period": "day", "since": now - DAY,
               "limit_usd": 0.0, "max_calls": 1, "enforcement": "block"}]
    first = store.reserve_budget(checks, skill="s", usd=0.0)
    assert first["id"] and first["blocked"] is None
    second = store.reserve_budget(checks, skill="s", usd=0.0)
    assert second["blocked"]["reserved_calls"] == 1 and second["id"] is None
    store.release_budget(first["id"])
    assert store.reserve_budget(checks, skill="s", usd=0.0)["id"]


def test_cost_arithmetic_and_prices():
    cfg = load_config()
    sonnet = price_for(cfg, "claude-sonnet-4-6-20260101", local=False)
    assert sonnet == {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}
    assert price_for(cfg, "claude-opus-4-1", local=False)["input"] == 15.0
    assert price_for(cfg, "claude-opus-4-7", local=False)["input"] == 5.0
    assert price_for(cfg, "qwen3:8b", local=True) == {"input": 0.0, "output": 0.0, "cache_read": 0.0,
                                                      "cache_write": 0.0}
    cost, savings = call_cost(sonnet, input_tokens=2_000_000, output_tokens=0, cache_read=1_000_000)
    assert (cost, savings) == (pytest.approx(6.3), pytest.approx(2.7))


def test_budget_exceeded_message_names_spend_and_limit():
    exc = BudgetExceeded("summarize", 0.054, 0.05, period="day")
    assert str(exc).startswith("budget exceeded for skill summarize: $0.0540 of $0.0500 this day")
    assert "[budgets.skills.summarize]" in str(exc)


def test_period_starts_are_utc_calendar():
    t = dt.datetime(2026, 3, 18, 15, 30, tzinfo=dt.UTC).timestamp()  # a Wednesday
    assert period_start("day", now=t) == dt.datetime(2026, 3, 18, tzinfo=dt.UTC).timestamp()
    assert period_start("week", now=t) == dt.datetime(2026, 3, 16, tzinfo=dt.UTC).timestamp()
    assert period_start("month", now=t) == dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()


def test_status_classification_and_retry_after_parsing():
    assert [classify_status(s) for s in (400, 401, 403, 404, 422, 429, 500, 503, 529)] == [
        "bad_request", "auth", "auth", "model_missing", "bad_request", "rate_limit", "server", "server", "server"]
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("garbage") is None
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(soon) <= 31


def test_provider_types_are_modules_and_unknown_types_are_clear():
    assert {"ollama", "claude", "openai_compatible"} <= set(available_types())
    assert provider_class("ollama").type_name == "ollama"
    with pytest.raises(ProviderError, match="unknown provider type 'gemini'; use one of"):
        provider_class("gemini")
    with pytest.raises(ProviderError):
        provider_class("base")
