"""Read-check-write methods of the store stay exact with many writers at once:
eight real processes, each with its own store on the same database, are
released together by a barrier and race for one lock, one alert, the last of a
budget or a rate window, one half-open probe, one inbox. The tests run on every
backend in tests/store_backends.py; SQLite admits one writer at a time, so
there they pin the results that a backend with many writers (PostgreSQL, READ
COMMITTED) must give too.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import time

import pytest
from store_backends import open_from_spec

CTX = mp.get_context("spawn")
N = 8  # racing processes
ROUND_TIMEOUT_S = 60.0


# -- the crew: N processes that each run one operation per round, together --
def _run_op(store, idx: int, op: str, args: dict):
    me = f"p{idx}"
    if op == "acquire_locks":
        return [store.acquire_lock(name, me, args["ttl_s"]) for name in args["names"]]
    if op == "raise_alerts":
        return [store.raise_alert("warning", "race", f"{me} #{i}", dedup_key=args["key"])
                for i in range(args["times"])]
    if op == "raise_or_ack":  # even processes raise, odd ones ack whatever is open
        raised = 0
        for _ in range(args["times"]):
            if idx % 2 == 0:
                store.raise_alert("warning", "race", me, dedup_key=args["key"])
                raised += 1
            else:
                for alert in store.list_alerts():
                    store.ack_alert(alert["id"], by=me)
        return raised
    if op == "ack":
        return store.ack_alert(args["id"], by=me)
    if op == "reserve":
        return [store.reserve_budget(args["checks"], skill=f"skill{idx % 3}", usd=args["usd"])
                for _ in range(args["times"])]
    if op == "reserve_and_spend":  # each reservation becomes a usage row of the same cost
        granted = 0
        for _ in range(args["times"]):
            res = store.reserve_budget(args["checks"], skill="s", usd=args["usd"])
            if res["id"] is not None:
                granted += 1
                store.record_model_call({"provider": "p", "skill": "s", "cost_usd": args["usd"], "success": True},
                                        release_reservation=res["id"])
        return granted
    if op == "admit":
        return [store.admit_provider_request(args["provider"], **args["kwargs"]) for _ in range(args["times"])]
    if op == "fail":
        for _ in range(args["times"]):
            store.record_model_call({"provider": args["provider"], "success": False, "error": "boom"},
                                    outcome={"kind": "server", "breaker": True, "error": "boom",
                                             "breaker_failures": args["breaker_failures"], "breaker_open_s": 60.0})
        return args["times"]
    if op == "drain_inbox":
        got = []
        while batch := store.inbox(args["recipient"], limit=args["limit"], mark_read=True):
            got += [(m["id"], m["read_at"]) for m in batch]
        return got
    if op == "broadcast":
        return [store.broadcast(me, f"hello from {me} #{i}") for i in range(args["times"])]
    raise ValueError(f"unknown op {op}")


def crew_member(idx: int, barrier, commands, results) -> None:
    """Loop: take (spec, op, args); open (or reuse) a store on the spec's
    database; wait for the whole crew at the barrier; run; report."""
    spec_key, store = None, None
    while True:
        command = commands.get()
        if command is None:
            break
        spec, op, args = command
        if op == "ready":  # started and imported: nothing to open
            barrier.wait(timeout=ROUND_TIMEOUT_S)
            results.put((idx, ("ok", True)))
            continue
        if spec != spec_key:
            if store is not None:
                store.close()
            store, spec_key = open_from_spec(json.loads(spec)), spec
        try:
            barrier.wait(timeout=ROUND_TIMEOUT_S)
            result = ("ok", _run_op(store, idx, op, args))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
            result = ("error", f"{type(exc).__name__}: {exc}")
        results.put((idx, result))
    if store is not None:
        store.close()


class Crew:
    def __init__(self, n: int):
        self.barrier = CTX.Barrier(n)
        self.results = CTX.Queue()
        self.inboxes = [CTX.Queue() for _ in range(n)]
        self.procs = [CTX.Process(target=crew_member, args=(i, self.barrier, self.inboxes[i], self.results),
                                  daemon=True) for i in range(n)]
        for p in self.procs:
            p.start()

    def race(self, spec: dict, op: str, **args) -> list:
        """Every member runs `op` at once; their results in member order."""
        text = json.dumps(spec)
        for q in self.inboxes:
            q.put((text, op, args))
        out: list = [None] * len(self.procs)
        errors = []
        for _ in self.procs:  # every member's answer, so the next round starts clean
            idx, (status, value) = self.results.get(timeout=ROUND_TIMEOUT_S)
            out[idx] = value
            if status != "ok":
                errors.append(f"p{idx}: {value}")
        assert not errors, errors
        return out

    def stop(self) -> None:
        for q in self.inboxes:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


@pytest.fixture(scope="module")
def crew():
    c = Crew(N)
    c.race(None, "ready")  # pay for starting the processes here, not in the first test
    yield c
    c.stop()


@pytest.fixture
def shared(store_factory):
    """(store, spec): a fresh store here and the spec the crew opens it by."""
    store = store_factory()
    return store, store_factory.spec(store)


def _fleet_budget(**limits) -> list[dict]:
    return [{"name": "fleet", "skill": None, "since": 0.0, "enforcement": "block",
             "limit_usd": 0.0, "max_calls": 0, **limits}]


# -- named locks ---------------------------------------------------------
def test_racing_takers_of_a_free_lock_exactly_one_wins(crew, shared):
    store, spec = shared
    names = [f"lock{i}" for i in range(10)]
    won = crew.race(spec, "acquire_locks", names=names, ttl_s=60.0)
    for j, name in enumerate(names):
        winners = [f"p{i}" for i in range(N) if won[i][j]]
        assert len(winners) == 1, (name, winners)
        assert store.lock_holder(name)["holder"] == winners[0]
    taken = store.events(action="lock_acquired", limit=1000)
    assert sorted(e["detail"]["lock"] for e in taken) == sorted(names)  # one event per lock


def test_racing_takers_of_an_expired_lock_exactly_one_wins(crew, shared):
    store, spec = shared
    assert store.acquire_lock("gpu", "gone", ttl_s=0.01)
    time.sleep(0.05)
    won = crew.race(spec, "acquire_locks", names=["gpu"], ttl_s=60.0)
    winners = [f"p{i}" for i in range(N) if won[i][0]]
    assert len(winners) == 1 and store.lock_holder("gpu")["holder"] == winners[0]
    assert not store.acquire_lock("gpu", "gone", ttl_s=60.0)
    # The winner extends it (True, no second event); the others still cannot take it.
    assert store.acquire_lock("gpu", winners[0], ttl_s=60.0)
    assert [e["actor"] for e in store.events(action="lock_acquired")] == ["gone", winners[0]]


# -- alerts ----------------------------------------------------------------
def test_racing_raisers_bump_one_open_alert_and_lose_no_occurrence(crew, shared):
    store, spec = shared
    times = 10
    ids = crew.race(spec, "raise_alerts", key="gpu-hot", times=times)
    assert {i for per in ids for i in per} == {ids[0][0]}  # everyone got the same alert
    (alert,) = store.list_alerts()
    assert alert["id"] == ids[0][0] and alert["occurrences"] == N * times
    assert len(store.events(action="alert")) == 1  # opened once


def test_raising_while_acking_counts_every_raise_in_some_alert(crew, shared):
    store, spec = shared
    raised = sum(crew.race(spec, "raise_or_ack", key="flapping:coder", times=15))
    alerts = [a for a in store.list_alerts(active_only=False, limit=1000) if a["dedup_key"] == "flapping:coder"]
    assert sum(a["occurrences"] for a in alerts) == raised
    assert len([a for a in alerts if a["acked_at"] is None]) <= 1
    assert len(store.events(action="alert", limit=1000)) == len(alerts)  # one event per alert opened


def test_racing_acks_of_one_alert_ack_it_once(crew, shared):
    store, spec = shared
    aid = store.raise_alert("critical", "hw", "GPU very hot")
    rows = crew.race(spec, "ack", id=aid)
    acker = rows[0]["acked_by"]
    assert all(r["id"] == aid and r["acked_by"] == acker and r["acked_at"] == rows[0]["acked_at"] for r in rows)
    assert [e["actor"] for e in store.events(action="alert_ack")] == [acker]


# -- budgets -----------------------------------------------------------------
def test_racing_reservations_never_overcommit_the_limit(crew, shared):
    store, spec = shared
    results = crew.race(spec, "reserve", checks=_fleet_budget(limit_usd=1.0), usd=0.25, times=2)
    flat = [r for per in results for r in per]
    granted = [r for r in flat if r["id"] is not None]
    assert len(granted) == 4 and len({r["id"] for r in granted}) == 4
    blocked = [r["blocked"] for r in flat if r["id"] is None]
    assert len(blocked) == 2 * N - 4
    assert all(b["over"] == "usd" and b["reserved_usd"] == 1.0 for b in blocked)
    assert store.usage_totals(0.0)["reserved_usd"] == 1.0


def test_racing_reservations_never_overcommit_max_calls(crew, shared):
    store, spec = shared
    results = crew.race(spec, "reserve", checks=_fleet_budget(max_calls=5), usd=0.0, times=2)
    assert sum(r["id"] is not None for per in results for r in per) == 5
    assert store.usage_totals(0.0)["reserved_calls"] == 5


def test_reservations_racing_their_own_spending_never_overspend(crew, shared):
    store, spec = shared
    # Each grant turns into a usage row of the same cost in the transaction
    # that releases it, while the others reserve: spend stops at the limit.
    granted = crew.race(spec, "reserve_and_spend", checks=_fleet_budget(limit_usd=1.0), usd=0.25, times=3)
    totals = store.usage_totals(0.0)
    assert sum(granted) == 4 and totals["spent_usd"] == 1.0 and totals["reserved_usd"] == 0.0


# -- provider admission and outcomes -----------------------------------------
def test_racing_requests_never_exceed_rpm(crew, shared):
    _, spec = shared
    results = crew.race(spec, "admit", provider="cloud", kwargs={"rpm": 10, "headroom": 1.0}, times=3)
    flat = [r for per in results for r in per]
    assert sum(r["ok"] for r in flat) == 10
    refused = [r for r in flat if not r["ok"]]
    assert {r["reason"] for r in refused} == {"rate_headroom"}
    assert all(r["until"] > time.time() + 50 for r in refused)  # the window frees in about a minute


def test_racing_requests_each_get_their_own_spacing_slot(crew, shared):
    _, spec = shared
    results = crew.race(spec, "admit", provider="local", kwargs={"spacing_s": 60.0}, times=1)
    waits = sorted(r[0]["wait_s"] for r in results)
    assert all(r[0]["ok"] for r in results)
    # One request per 60 s slot: the first goes at once, then the waits step
    # by about 60 s (each is taken from its own clock reading, moments apart).
    assert waits[0] == 0.0
    assert all(abs((b - a) - 60.0) < 10.0 for a, b in itertools.pairwise(waits)), waits


def test_racing_requests_through_a_half_open_breaker_send_one_probe(crew, shared):
    store, spec = shared
    store.record_model_call({"provider": "flaky", "success": False},
                            outcome={"kind": "server", "breaker": True, "breaker_failures": 1, "breaker_open_s": 0.01})
    time.sleep(0.05)  # the breaker is now half-open
    results = [r[0] for r in crew.race(spec, "admit", provider="flaky", kwargs={"probe_lease_s": 60.0}, times=1)]
    assert sum(r["ok"] for r in results) == 1 and all(r["probe"] for r in results if r["ok"])
    assert {r["reason"] for r in results if not r["ok"]} == {"breaker_open"}


def test_racing_failures_are_all_counted_by_the_breaker(crew, shared):
    store, spec = shared
    crew.race(spec, "fail", provider="down", times=10, breaker_failures=10**6)
    (state,) = [s for s in store.provider_states() if s["provider"] == "down"]
    assert state["consecutive_failures"] == N * 10 and state["breaker"] == "closed"
    crew.race(spec, "fail", provider="down2", times=1, breaker_failures=3)  # trips on the third
    (state,) = [s for s in store.provider_states() if s["provider"] == "down2"]
    assert state["consecutive_failures"] == N and state["breaker"] == "open" and state["half_open"] == 1


# -- messages ----------------------------------------------------------------
def test_racing_readers_of_one_inbox_each_message_delivered_once(crew, shared):
    store, spec = shared
    sent = [store.send_message("lead", "coder_1", f"job {i}") for i in range(60)]
    got = crew.race(spec, "drain_inbox", recipient="coder_1", limit=3)
    ids = [mid for per in got for mid, _ in per]
    assert sorted(ids) == sent  # every message once, none twice
    assert all(read_at is None for per in got for _, read_at in per)  # returned as read: unread
    assert all(per == sorted(per) for per in got)
    assert store.inbox("coder_1") == []


def test_racing_broadcasts_reach_every_agent_once_each(crew, shared):
    store, spec = shared
    for name in ("b", "a", "c"):
        store.register_agent(name, "coder")
    sent = crew.race(spec, "broadcast", times=2)
    recipient = {m["id"]: name for name in ("a", "b", "c") for m in store.inbox(name, limit=1000)}
    assert len(recipient) == 3 * 2 * N  # every agent got every broadcast, once
    for per in sent:
        for ids in per:  # each call: its own three messages, in agent-name order
            assert [recipient[i] for i in ids] == ["a", "b", "c"]
