"""Provider state shared through the store across real processes: the circuit
breaker (opened in one process, seen by another; exactly one probe after the
cool-down), Retry-After cool-downs, RPM headroom, request spacing, and budgets
(block fails the task with the reason, warn alerts, a 10-process race
against a cap of 2 calls)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.model_servers import (
    FakeAnthropic,
    FakeOllama,
    FakeOpenAI,
    Reply,
    provider_toml,
    write_model_config,
)

from fleet.config import load_config
from fleet.costs import BudgetExceeded
from fleet.db import open_store
from fleet.skills._models import NoProviderAvailable, call_model
from tests.fakes.fleetproc import wait_until

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-shared-test"

CHILD = r"""
import json, os, sys, time
import httpx  # imported before the start signal, as in a warm worker
from fleet.config import load_config
from fleet.skills._models import call_model, NoProviderAvailable
from fleet.costs import BudgetExceeded
cfg = load_config()
go = os.environ.get("GO_FILE")
if go:
    open(go + "." + str(os.getpid()), "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
try:
    r = call_model("q", cfg, skill=os.environ.get("SKILL") or None)
    out = {"ok": True, "provider": r.provider, "trail": [h["reason"] for h in r.trail]}
except BudgetExceeded as e:
    out = {"ok": False, "error": "budget", "message": str(e)}
except NoProviderAvailable as e:
    out = {"ok": False, "error": "none", "message": str(e)}
print(json.dumps(out))
"""


def run_children(n: int, tmp_path: Path, *, skill: str | None = None, timeout: float = 60.0,
                 before_go=None) -> list[dict]:
    """Start `n` processes that each make one call; once all are ready (imports
    done, so start-up time on a loaded machine does not matter) run
    `before_go()`, then release them together."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=str(REPO), GO_FILE=str(go), SKILL=skill or "")
    procs = [subprocess.Popen([sys.executable, "-c", CHILD], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    deadline = time.monotonic() + timeout
    while len(list(tmp_path.glob(go.name + ".*"))) < n and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.02)
    if before_go is not None:
        before_go()
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.fixture
def pair(isolated_home, monkeypatch):
    """ollama (primary) and backup (OpenAI-compatible) fakes; config with a fast breaker."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeOllama() as ollama, FakeOpenAI() as backup, FakeAnthropic(api_key=KEY) as claude:
        yield ollama, backup, claude


def _write(home, pair, *, chain, models="", extra="", claude_extra=None, backup_extra=None, max_wait_s=0.0):
    ollama, backup, claude = pair
    write_model_config(home, chain=chain, models=models, extra=extra, max_wait_s=max_wait_s, providers=[
        provider_toml("ollama", "ollama", ollama.url, model="m"),
        provider_toml("backup", "openai_compatible", backup.url,
                      **dict({"model": "b", "min_spacing_ms": 0}, **(backup_extra or {}))),
        provider_toml("claude", "claude", claude.url, model="claude-sonnet-4-6",
                      **dict({"min_spacing_ms": 0, "rpm": 0}, **(claude_extra or {}))),
    ])
    cfg = load_config(home)
    open_store(cfg)  # create the database before child processes race to open it
    return cfg


def _state(cfg, name):
    return next((s for s in open_store(cfg).provider_states() if s["provider"] == name), None)


def test_breaker_is_shared_across_processes_and_lets_exactly_one_probe(isolated_home, pair, tmp_path):
    ollama, _backup, _ = pair
    cfg = _write(isolated_home, pair, chain=["ollama", "backup"], models="breaker_failures = 3\nbreaker_open_s = 1.5")
    ollama.fail(500, "down", times=3)

    def open_the_breaker():
        for _ in range(3):
            assert call_model("q", cfg).provider == "backup"
        assert ollama.request_count == 3
        assert _state(cfg, "ollama")["breaker"] == "open"

    # another process sees the open breaker and fails over without a request
    [child] = run_children(1, tmp_path, before_go=open_the_breaker)
    assert child == {"ok": True, "provider": "backup", "trail": ["breaker_open"]}
    assert ollama.request_count == 3

    # after the cool-down: four processes at once, exactly one probe reaches ollama
    ollama.default = Reply(text="probe ok", delay_s=5.0)
    results = run_children(4, tmp_path, before_go=lambda: wait_until(
        lambda: _state(cfg, "ollama")["opened_until"] < time.time()))
    assert ollama.request_count == 4
    assert sorted(r["provider"] for r in results) == ["backup", "backup", "backup", "ollama"]
    assert all(r["trail"] == ["breaker_open"] for r in results if r["provider"] == "backup")
    ollama.default = Reply(text="ok")
    assert _state(cfg, "ollama")["breaker"] == "closed"
    assert call_model("q", cfg).provider == "ollama"


def test_failed_probe_reopens_the_breaker(isolated_home, pair):
    ollama, _, _ = pair
    cfg = _write(isolated_home, pair, chain=["ollama", "backup"], models="breaker_failures = 2\nbreaker_open_s = 1.0")
    ollama.fail(503, "down", times=3)
    call_model("q", cfg)
    call_model("q", cfg)
    assert _state(cfg, "ollama")["breaker"] == "open"
    assert wait_until(lambda: _state(cfg, "ollama")["opened_until"] < time.time())
    probe = call_model("q", cfg)  # the probe fails: open again at once
    assert probe.trail[0]["reason"] == "server" and ollama.request_count == 3
    again = call_model("q", cfg)
    assert again.trail[0]["reason"] == "breaker_open" and ollama.request_count == 3


def test_retry_after_is_honoured_across_processes(isolated_home, pair, tmp_path):
    _, _backup, claude = pair
    cfg = _write(isolated_home, pair, chain=["claude", "backup"])
    claude.fail(429, "rate limited", retry_after=3)
    first = {}

    def get_a_429():
        first["result"] = call_model("q", cfg)

    [child] = run_children(1, tmp_path, before_go=get_a_429)
    assert first["result"].provider == "backup" and first["result"].trail[0]["reason"] == "rate_limit"
    assert first["result"].trail[0]["cooldown_s"] == 3.0
    assert child == {"ok": True, "provider": "backup", "trail": ["cooldown"]}
    assert claude.request_count == 1
    assert wait_until(lambda: not _state(cfg, "claude")["cooling_down"])
    [child] = run_children(1, tmp_path)
    assert child["provider"] == "claude" and claude.request_count == 2


@pytest.mark.parametrize("header,expected", [(1000, 120.0), (None, 30.0), (0, 1.0),
                                             ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0)])
def test_retry_after_is_clamped(isolated_home, pair, header, expected):
    _, _, claude = pair
    cfg = _write(isolated_home, pair, chain=["claude", "backup"])
    claude.fail(429, "slow", retry_after=header)
    before = time.time()
    call_model("q", cfg)
    wait = _state(cfg, "claude")["cooldown_until"] - before
    assert expected - 0.5 <= wait <= expected + 5.0


def test_a_short_cool_down_on_the_only_provider_is_waited_out_within_max_wait(isolated_home, pair):
    _, _, claude = pair
    cfg = _write(isolated_home, pair, chain=["claude"], max_wait_s=10.0)
    claude.fail(429, "slow", retry_after=1)
    result = call_model("q", cfg)
    assert result.provider == "claude" and [h["reason"] for h in result.trail] == ["rate_limit"]
    assert claude.request_count == 2
    assert [r["success"] for r in open_store(cfg).usage_rows(call_id=result.call_id)] == [0, 1]
    claude.fail(429, "slow", retry_after=60)  # longer than max_wait_s: fail at once, saying why
    started = time.monotonic()
    with pytest.raises(NoProviderAvailable, match="rate_limit"):
        call_model("q", cfg)
    assert time.monotonic() - started < 8.0


def test_rpm_headroom_moves_the_rest_to_the_next_provider(isolated_home, pair):
    _, _backup, claude = pair
    cfg = _write(isolated_home, pair, chain=["claude", "backup"], claude_extra={"rpm": 5, "headroom": 0.8})
    providers = [call_model("q", cfg).provider for _ in range(5)]
    assert providers == ["claude"] * 4 + ["backup"]
    assert claude.request_count == 4


def test_min_spacing_holds_across_processes(isolated_home, pair, tmp_path):
    _, backup, _ = pair
    _write(isolated_home, pair, chain=["backup"], backup_extra={"min_spacing_ms": 600})
    results = run_children(3, tmp_path)
    assert all(r["ok"] for r in results)
    assert len(backup.requests_to("/v1/chat/completions")) == 3
    # Spacing holds for when requests are sent (arrival times also carry each
    # process's connection set-up jitter): send time = row time - latency.
    rows = open_store(load_config(isolated_home)).usage_rows()
    starts = sorted(r["ts"] - r["latency_ms"] / 1000.0 for r in rows)
    assert len(starts) == 3
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(starts)), starts


def test_budget_race_ten_processes_against_a_cap_of_two(isolated_home, pair, tmp_path):
    ollama, _, _ = pair
    cfg = _write(isolated_home, pair, chain=["ollama"],
                 extra='[budgets.skills.race]\nmax_calls = 2\nenforcement = "block"\n')
    ollama.default = Reply(text="ok", delay_s=0.5)
    results = run_children(10, tmp_path, skill="race", timeout=90)
    assert sum(r["ok"] for r in results) == 2
    blocked = [r for r in results if not r["ok"]]
    assert len(blocked) == 8 and all(r["error"] == "budget" for r in blocked)
    assert all("budget exceeded for skill race: 2 of 2 calls" in r["message"] for r in blocked)
    assert len(ollama.requests_to("/api/chat")) == 2
    assert len(open_store(cfg).usage_rows(skill="race")) == 2


def test_budget_block_fails_the_task_with_the_reason_never_done(isolated_home, pair):
    _, _, claude = pair
    cfg = _write(isolated_home, pair, chain=["claude"],
                 extra='[budgets.skills.pricey]\nlimit_usd = 0.05\nenforcement = "block"\n')
    claude.default = Reply(text="answer", usage={"input": 1000, "output": 1000})  # $0.018 per call
    store = open_store(cfg)
    outcomes = []
    for _ in range(4):
        store.enqueue("pricey", {})
        task = store.claim("w1", ["pricey"])
        try:  # what the worker does with the skill's outcome
            result = call_model("q", cfg, skill="pricey", task_id=task.id, max_tokens=100)
            store.complete(task.id, task.lease_token, {"text": result.text})
        except BudgetExceeded as exc:
            store.fail(task.id, task.lease_token, str(exc), retryable=False, reason="budget")
        outcomes.append(store.get(task.id))
    assert [t.status for t in outcomes] == ["DONE", "DONE", "DONE", "FAILED"]
    assert outcomes[3].error.startswith("budget exceeded for skill pricey: $0.0540 of $0.0500")
    assert outcomes[3].result is None
    assert claude.request_count == 3


def test_budget_warn_lets_calls_through_and_raises_an_alert(isolated_home, pair):
    ollama, _, _ = pair
    cfg = _write(isolated_home, pair, chain=["ollama"], extra="[budgets]\nglobal_calls = 1\n")
    assert call_model("q", cfg).budget_warnings == []
    second = call_model("q", cfg)
    assert second.text == "ok" and len(second.budget_warnings) == 1
    assert "over budget for the fleet: 1 of 1 calls" in second.budget_warnings[0]
    alerts = [a for a in open_store(cfg).list_alerts() if a["component"] == "budget"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "warning"
    assert ollama.request_count == 2
