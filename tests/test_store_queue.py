"""Task-queue semantics of the store, one process, on every backend (the
`store` and `store_factory` fixtures): claim order and eligibility, leases,
retries with backoff, dead letter, delays, idempotency, cancel, dependencies,
WAITING_HUMAN, listing, bad input and wake-ups. What only SQLite has (its
pragmas, WAL, checkpoints, the claim's query plan, the file) is in
test_store_sqlite.py.
"""

from __future__ import annotations

import math
import sys
import time

import pytest

from fleet.db import (
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    NotFound,
)
from tests.fakes.fleetproc import wait_until


def _claim_all(store, worker="w", skills=("s",), **kw):
    out = []
    while (t := store.claim(worker, list(skills), **kw)) is not None:
        out.append(t)
    return out


# -- claim ---------------------------------------------------------------
def test_claim_order_is_priority_then_fifo_by_id(store):
    ids = {}
    for name, prio in [("a", 5), ("b", 9), ("c", 5), ("d", 1), ("e", 9), ("f", 10)]:
        ids[name] = store.enqueue("s", {"name": name}, priority=prio).id
    claimed = _claim_all(store)
    assert [t.payload["name"] for t in claimed] == ["f", "b", "e", "a", "c", "d"]
    for t in claimed:  # each claim returned exactly the row it changed
        row = store.get(t.id)
        assert row.status == "RUNNING" and row.lease_token == t.lease_token and row.worker == "w"
        assert t.status == "RUNNING" and t.attempts == 1 and t.lease_expires_at > time.time()


def test_claim_returns_the_exact_row_when_many_are_claimed(store):
    store.enqueue_many([{"skill": "s", "payload": {"i": i}, "priority": 1 + i % 10} for i in range(200)])
    claimed = _claim_all(store, lease_s=30)
    assert len(claimed) == len({t.id for t in claimed}) == 200
    running = store.list_tasks(status="RUNNING", limit=1000)
    assert running.total == 200
    tokens = {t.id: t.lease_token for t in claimed}
    assert all(tokens[t.id] == t.lease_token and t.lease_expires_at for t in running.items)


def test_assigned_tasks_go_only_to_their_worker(store):
    mine = store.enqueue("s", {}, assigned_to="alice", priority=10)
    other = store.enqueue("s", {}, priority=1)
    got = store.claim("bob", ["s"])
    assert got.id == other.id  # bob never sees alice's task, even at priority 10
    assert store.claim("bob", ["s"], any_skill=True) is None
    assert store.claim("alice", []).id == mine.id  # by name, whatever the skill list


def test_skill_filter_and_any_skill(store):
    a = store.enqueue("alpha", {})
    b = store.enqueue("beta", {})
    assert store.claim("w", ["gamma"]) is None
    assert store.claim("w", []) is None
    assert store.claim("w", ["beta"]).id == b.id
    assert store.claim("w", [], any_skill=True).id == a.id


def test_delayed_and_future_tasks_are_not_claimable_until_due(store):
    later = store.enqueue("s", {}, delay_s=0.3, priority=10)
    far = store.enqueue("s", {}, available_at=time.time() + 3600)
    now_task = store.enqueue("s", {}, priority=1)
    assert store.claim("w", ["s"]).id == now_task.id
    assert store.claim("w", ["s"]) is None
    assert store.next_available_at() == pytest.approx(later.available_at)
    assert store.pending_depth(["s"]) == 0
    got = wait_until(lambda: store.claim("w", ["s"]))
    assert got.id == later.id and time.time() >= later.available_at
    assert store.get(far.id).status == "PENDING"


# -- model-aware claiming (claim_order.py) --------------------------------
def _models_of(tasks):
    return [t.payload.get("model", t.skill) for t in tasks]


def test_claim_prefers_tasks_on_a_loaded_model_within_a_priority(store):
    specs = [{"skill": "s", "payload": {"model": m, "i": i}} for i, m in enumerate("abcabcabc")]
    specs += [{"skill": "s", "payload": {"model": "c", "urgent": True}, "priority": 9},
              {"skill": "chat", "payload": {}}, {"skill": "s", "payload": {"model": "b:latest"}}]
    made = store.enqueue_many(specs)
    prefer = {"models": ["b"], "skills": ["chat"], "max_wait_s": 600}
    claimed = _claim_all(store, skills=("s", "chat"), prefer=prefer)
    # the priority-9 task first (priorities win), then every task on model b
    # (":latest" is the same model) and the skill preferred for model-less
    # payloads, oldest first; then the rest in the plain order
    assert _models_of(claimed) == ["c", "b", "b", "b", "chat", "b:latest", "a", "c", "a", "c", "a", "c"]
    assert sorted(t.id for t in claimed) == sorted(t.id for t in made)
    # without a preference the order is the plain one (priority, then id)
    store.enqueue_many([{"skill": "s", "payload": {"model": m}} for m in "abab"])
    assert _models_of(_claim_all(store)) == ["a", "b", "a", "b"]


def test_the_waiting_age_bound_overrides_the_preference(store):
    old = store.enqueue("s", {"model": "b"}, available_at=time.time() - 100)
    fresh = store.enqueue_many([{"skill": "s", "payload": {"model": "a"}} for _ in range(3)])
    # b has waited 100 s longer than every task on the loaded model a: with a
    # bound of 1000 s the preference wins; with 30 s b is taken first
    running = store.claim("w", ["s"], prefer={"models": ["a"], "max_wait_s": 1000})
    assert running.id == fresh[0].id
    # complete_and_claim applies the same order in its one transaction
    _, nxt = store.complete_and_claim(running.id, running.lease_token, {}, worker="w", skills=["s"],
                                      prefer={"models": ["a"], "max_wait_s": 1000})
    assert nxt.id == fresh[1].id
    _, nxt = store.complete_and_claim(nxt.id, nxt.lease_token, {}, worker="w", skills=["s"],
                                      prefer={"models": ["a"], "max_wait_s": 30})
    assert nxt.id == old.id
    assert store.claim("w", ["s"], prefer={"models": ["a"], "max_wait_s": 30}).id == fresh[2].id


def test_preferring_claimers_never_take_the_same_task(store_factory):
    import threading

    store = store_factory()
    store.enqueue_many([{"skill": "s", "payload": {"model": "abc"[i % 3]}} for i in range(150)])
    got: dict[str, list[int]] = {}

    def claimer(name, model):
        ids = got.setdefault(name, [])  # one Store shared by the threads, as a worker's slots share it
        while (t := store.claim(name, ["s"], prefer={"models": [model]})) is not None:
            ids.append(t.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}", "abc"[i % 3])) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    everything = [i for ids in got.values() for i in ids]
    assert len(everything) == len(set(everything)) == 150


# -- leases, renew, release ----------------------------------------------
def test_renew_extends_lease_and_reports_cancel(store):
    t = store.enqueue("s", {})
    c = store.claim("w", ["s"], lease_s=5)
    assert store.renew(t.id, c.lease_token, 100) is False
    assert store.get(t.id).lease_expires_at > time.time() + 90
    store.cancel(t.id)
    assert store.get(t.id).status == "RUNNING" and store.get(t.id).cancel_requested
    assert store.renew(t.id, c.lease_token, 100) is True  # the worker learns on renew
    done = store.acknowledge_cancel(t.id, c.lease_token)
    assert done.status == "CANCELLED"
    assert store.attempts(t.id)[-1]["outcome"] == "cancelled"
    with pytest.raises(LeaseLost):
        store.renew(t.id, c.lease_token, 100)


def test_release_gives_back_without_counting_an_attempt(store):
    t = store.enqueue("s", {}, max_attempts=1)
    c = store.claim("w", ["s"])
    back = store.release(t.id, c.lease_token)
    assert back.status == "PENDING" and back.attempts == 0 and back.lease_token is None
    again = store.claim("w2", ["s"])
    assert again.id == t.id and again.attempts == 1
    assert [a["outcome"] for a in store.attempts(t.id)] == ["released", "running"]


def test_an_expired_lease_is_requeued_without_using_an_attempt(store):
    t = store.enqueue("s", {}, max_attempts=2)
    for n in range(1, 4):  # more crashes than attempts: a crash is not the task's failure
        store.claim("w", ["s"], lease_s=0.01)
        assert wait_until(lambda: store.reap_expired_leases()) == [t.id]
        row = store.get(t.id)
        assert row.status == "PENDING" and row.error_reason == "expired" and row.attempts == 0
        attempts = store.attempts(t.id)
        assert [a["outcome"] for a in attempts] == ["expired"] * n
        assert not any(a["suspect"] for a in attempts)  # nothing else completed meanwhile: no one to blame
    assert store.claim("w", ["s"]).id == t.id


def _crash_while_others_finish(store, task_id, worker):
    """Claim `task_id` as `worker`, let another task complete, then the worker dies."""
    wait_until(lambda: store.get(task_id).available_at <= time.time(), what="the task's backoff to pass")
    got = store.claim(worker, ["poison"])
    assert got is not None and got.id == task_id
    other = store.enqueue("fine", {})
    done = store.claim("healthy", ["fine"])
    store.complete(done.id, done.lease_token)
    assert other.id == done.id
    return store.recover_worker_tasks(worker, f"worker {worker} died (SIGKILL)")


def test_a_task_that_kills_every_worker_that_takes_it_is_a_poison_pill(store_factory):
    store = store_factory(backoff_base_s=0.01, backoff_max_s=0.05, max_crashes=3, poison_window_s=30)
    t = store.enqueue("poison", {}, max_attempts=5)
    for n, worker in enumerate(("w1", "w2", "w3"), start=1):
        assert _crash_while_others_finish(store, t.id, worker) == [t.id]
        row = store.get(t.id)
        if n < 3:
            assert row.status == "PENDING" and row.attempts == 0
    row = store.get(t.id)
    assert row.status == "FAILED" and row.error_reason == "poison_pill" and "took down 3 workers" in row.error
    assert [(a["outcome"], a["suspect"]) for a in store.attempts(t.id)] == [("crashed", 1)] * 3
    assert [e["action"] for e in store.task_history(t.id)].count("requeue") == 2


def test_a_storm_of_kills_blames_no_task(store_factory):
    """Workers dying together (the OOM killer, an operator) implicate none of their tasks."""
    store = store_factory(backoff_base_s=0.01, backoff_max_s=0.05, max_crashes=2, poison_window_s=30)
    a, b = store.enqueue("poison", {}), store.enqueue("poison", {})
    for _ in range(4):
        wait_until(lambda: all(store.get(x.id).available_at <= time.time() for x in (a, b)), what="backoffs")
        store.claim("w1", ["poison"])
        store.claim("w2", ["poison"])
        fine = store.enqueue("fine", {})
        done = store.claim("healthy", ["fine"])
        store.complete(done.id, done.lease_token)
        assert fine.id == done.id
        store.recover_worker_tasks("w1", "killed")
        store.recover_worker_tasks("w2", "killed")
    for x in (a, b):
        assert store.get(x.id).status == "PENDING"
        assert sum(at["suspect"] for at in store.attempts(x.id)) <= 1  # only a first crash ever looks alone


def test_a_worker_dying_long_after_its_claim_does_not_implicate_the_task(store_factory):
    store = store_factory(backoff_base_s=0.01, backoff_max_s=0.05, max_crashes=1, poison_window_s=0.05)
    t = store.enqueue("poison", {})
    store.claim("w1", ["poison"])
    time.sleep(0.1)  # past the window
    store.enqueue("fine", {})
    done = store.claim("healthy", ["fine"])
    store.complete(done.id, done.lease_token)
    assert store.recover_worker_tasks("w1", "killed") == [t.id]  # (max_crashes = 1)
    assert store.get(t.id).status == "PENDING" and store.attempts(t.id)[0]["suspect"] == 0


def test_recover_worker_tasks_requeues_at_once(store):
    t = store.enqueue("s", {})
    store.claim("dead", ["s"], lease_s=600)
    assert store.recover_worker_tasks("dead", "process exited") == [t.id]
    assert store.get(t.id).status == "PENDING"
    assert store.attempts(t.id)[0]["outcome"] == "crashed"
    assert store.claim("alive", ["s"]).id == t.id


# -- retries, backoff, dead letter ---------------------------------------
def _freeze_store_clock(monkeypatch, clock: list[float]) -> None:
    """The store's clock reads clock[0]: every store module (of any backend)
    takes its time from fleet.store.values.now, imported by name."""
    from fleet.store import values

    real = values.now
    monkeypatch.setattr(values, "now", lambda: clock[0])
    for name, mod in list(sys.modules.items()):
        if name.startswith("fleet.store.") and getattr(mod, "now", None) is real:
            monkeypatch.setattr(mod, "now", lambda: clock[0])


def test_retry_backoff_is_exponential_with_jitter_and_capped(store_factory, monkeypatch):
    clock = [time.time()]
    store = store_factory(backoff_base_s=10.0, backoff_max_s=30.0)
    _freeze_store_clock(monkeypatch, clock)
    delays = {1: [], 2: [], 3: [], 4: []}
    for _ in range(12):
        t = store.enqueue("s", {}, max_attempts=5)
        for attempt in (1, 2, 3, 4):
            c = store.claim("w", ["s"])
            assert c is not None and c.id == t.id and c.attempts == attempt
            failed = store.fail(t.id, c.lease_token, "boom")
            assert failed.status == "PENDING" and failed.error == "boom"
            delays[attempt].append(failed.available_at - clock[0])
            assert store.claim("w", ["s"]) is None  # not before its backoff
            assert store.next_available_at() == failed.available_at
            clock[0] = failed.available_at + 0.001
        store.cancel(t.id)
    # base 10 s doubling (10, 20, 40 -> capped at 30), half fixed and half random
    for attempt, full in ((1, 10.0), (2, 20.0), (3, 30.0), (4, 30.0)):
        ds = delays[attempt]
        assert all(full / 2 <= d <= full for d in ds), (attempt, ds)
        assert max(ds) - min(ds) > 0.01, f"no jitter on attempt {attempt}: {ds}"


def test_always_failing_task_ends_failed_after_max_attempts(store):
    t = store.enqueue("s", {}, max_attempts=3)
    for attempt in range(1, 4):
        c = wait_until(lambda: store.claim("w", ["s"]))
        assert c.attempts == attempt
        store.fail(t.id, c.lease_token, f"error {attempt}")
    row = store.get(t.id)
    assert row.status == "FAILED" and row.dead_letter and row.error == "error 3"
    assert [a["outcome"] for a in store.attempts(t.id)] == ["failed"] * 3
    time.sleep(0.1)  # past any backoff: it must never come back by itself
    assert store.claim("w", ["s"]) is None
    assert store.list_tasks(status="FAILED").items[0].to_dict()["dead_letter"] is True


def test_non_retryable_failure_is_final_at_once(store):
    t = store.enqueue("s", {}, max_attempts=5)
    c = store.claim("w", ["s"])
    row = store.fail(t.id, c.lease_token, "bad payload", retryable=False, reason="invalid_payload")
    assert row.status == "FAILED" and row.error_reason == "invalid_payload" and not row.dead_letter


def test_default_max_attempts_comes_from_the_store_config(store_factory):
    store = store_factory(default_max_attempts=7)
    assert store.enqueue("s", {}).max_attempts == 7
    assert store.enqueue("s", {}, max_attempts=2).max_attempts == 2


def test_operator_retry_of_finished_tasks(store):
    t = store.enqueue("s", {}, max_attempts=1)
    c = store.claim("w", ["s"])
    store.fail(t.id, c.lease_token, "x")
    again = store.retry(t.id, by="op")
    assert again.status == "PENDING" and again.attempts == 0 and again.error is None
    assert store.claim("w", ["s"]).id == t.id
    with pytest.raises(InvalidTransition):
        store.retry(t.id)  # RUNNING is not finished
    with pytest.raises(NotFound):
        store.retry(999_999)


# -- idempotency ---------------------------------------------------------
def test_idempotency_key_returns_the_existing_task(store):
    a = store.enqueue("s", {"v": 1}, idempotency_key="job-1")
    b = store.enqueue("s", {"v": 2}, idempotency_key="job-1")
    assert b.id == a.id and b.payload == {"v": 1}
    batch = store.enqueue_many([{"skill": "s", "idempotency_key": "job-2"},
                                {"skill": "s", "idempotency_key": "job-2"},
                                {"skill": "s", "idempotency_key": "job-1"}])
    assert batch[0].id == batch[1].id and batch[2].id == a.id
    assert store.counts()["PENDING"] == 2


# -- cancel --------------------------------------------------------------
def test_cancel_pending_never_runs(store):
    t = store.enqueue("s", {})
    assert store.cancel(t.id).status == "CANCELLED"
    assert store.claim("w", ["s"]) is None
    assert store.reap_expired_leases() == []
    assert store.get(t.id).status == "CANCELLED"
    with pytest.raises(InvalidTransition):
        store.cancel(t.id)
    with pytest.raises(NotFound):
        store.cancel(424242)


def test_cancel_running_then_reaped_or_failed_ends_cancelled(store):
    t = store.enqueue("s", {}, max_attempts=5)
    store.claim("w", ["s"], lease_s=0.01)
    store.cancel(t.id)
    wait_until(lambda: store.reap_expired_leases())
    assert store.get(t.id).status == "CANCELLED"
    u = store.enqueue("s", {}, max_attempts=5)
    c = store.claim("w", ["s"])
    store.cancel(u.id)
    assert store.fail(u.id, c.lease_token, "stopped").status == "CANCELLED"
    assert store.claim("w", ["s"]) is None


# -- dependencies --------------------------------------------------------
def test_dependencies_promote_in_the_same_transaction(store):
    a = store.enqueue("s", {"n": "a"})
    b = store.enqueue("s", {"n": "b"})
    child = store.enqueue("s", {"n": "child"}, depends_on=[a.id, b.id], priority=10)
    assert child.deps_pending == 2
    ca = store.claim("w", ["s"])
    assert ca.id == a.id  # the child has priority 10 but is not claimable
    store.complete(a.id, ca.lease_token)
    assert store.get(child.id).deps_pending == 1
    cb = store.claim("w", ["s"])
    assert cb.id == b.id
    store.complete(b.id, cb.lease_token)
    assert store.get(child.id).deps_pending == 0  # visible at the parent's commit
    assert store.claim("w", ["s"]).id == child.id
    assert store.dependencies(child.id) == [a.id, b.id] and store.dependents(a.id) == [child.id]


def test_permanent_failure_cascades_to_all_descendants(store):
    root = store.enqueue("s", {}, max_attempts=1)
    mid = store.enqueue("s", {}, depends_on=[root.id])
    leaf = store.enqueue("s", {}, depends_on=[mid.id])
    c = store.claim("w", ["s"])
    store.fail(root.id, c.lease_token, "root broke")
    for t in (mid, leaf):
        row = store.get(t.id)
        assert row.status == "FAILED" and row.error_reason == "dependency_failed"
    assert "root broke" in store.get(mid.id).error
    late = store.enqueue("s", {}, depends_on=[root.id])
    assert late.status == "FAILED" and late.error_reason == "dependency_failed"
    with pytest.raises(InvalidTransition, match="retry that task first"):
        store.retry(mid.id)


def test_cancelled_parent_fails_children(store):
    p = store.enqueue("s", {})
    child = store.enqueue("s", {}, depends_on=[p.id])
    store.cancel(p.id)
    assert store.get(child.id).status == "FAILED"


def test_retrying_a_done_parent_makes_pending_children_wait_again(store):
    p = store.enqueue("p", {})
    q = store.enqueue("q", {})
    child = store.enqueue("c", {}, depends_on=[p.id, q.id])
    cp = store.claim("w", ["p"])
    store.complete(p.id, cp.lease_token)
    store.retry(p.id)  # p runs again; q is still pending
    assert store.get(child.id).deps_pending == 2
    cp = store.claim("w", ["p"])
    store.complete(p.id, cp.lease_token)  # completing twice must not free the child early
    assert store.get(child.id).deps_pending == 1
    assert store.claim("w", ["c"]) is None
    cq = store.claim("w", ["q"])
    store.complete(q.id, cq.lease_token)
    assert store.claim("w", ["c"]).id == child.id


# -- WAITING_HUMAN -------------------------------------------------------
def test_ask_human_parks_and_answer_resumes(store):
    t = store.enqueue("s", {"doc": "x"}, max_attempts=1)
    c = store.claim("w", ["s"])
    parked = store.ask_human(t.id, c.lease_token, "Deploy now?", ["yes", "no"])
    assert parked.status == "WAITING_HUMAN" and parked.attempts == 0
    assert parked.question == {"question": "Deploy now?", "options": ["yes", "no"]}
    assert store.claim("w", ["s"]) is None
    with pytest.raises(LeaseLost):
        store.complete(t.id, c.lease_token)
    resumed = store.answer(t.id, "yes", by="ops")
    assert resumed.status == "PENDING" and resumed.answer == "yes"
    again = store.claim("w", ["s"])
    assert again.payload == {"doc": "x", "human_answer": "yes", "human_question": "Deploy now?"}
    assert again.attempts == 1  # asking did not use up the only attempt
    store.complete(t.id, again.lease_token, {"deployed": True})
    with pytest.raises(InvalidTransition):
        store.answer(t.id, "no")
    with pytest.raises(InvalidInput):
        store.ask_human(t.id, again.lease_token, "   ")


def test_waiting_human_can_be_cancelled(store):
    t = store.enqueue("s", {})
    c = store.claim("w", ["s"])
    store.ask_human(t.id, c.lease_token, "ok?")
    assert store.cancel(t.id).status == "CANCELLED"


# -- listing -------------------------------------------------------------
def test_list_pagination_and_filters(store):
    for i in range(25):
        store.enqueue("alpha" if i % 2 else "beta", {"note": f"item {i}"})
    c = store.claim("bob", ["alpha"])
    store.fail(c.id, c.lease_token, "disk quota exceeded", retryable=False)
    page1 = store.list_tasks(limit=10)
    page3 = store.list_tasks(limit=10, offset=20)
    assert page1.total == 25 and len(page1.items) == 10 and len(page3.items) == 5
    assert [t.id for t in page1.items] == sorted((t.id for t in page1.items), reverse=True)
    every = [t.id for off in (0, 10, 20) for t in store.list_tasks(limit=10, offset=off).items]
    assert len(set(every)) == 25
    assert store.list_tasks(skill="alpha").total == 12
    assert store.list_tasks(status="FAILED").total == 1
    assert store.list_tasks(status=["FAILED", "PENDING"]).total == 25
    assert store.list_tasks(agent="bob").items[0].id == c.id
    assert store.list_tasks(text="quota").total == 1
    assert store.list_tasks(text="item 1").total == 11  # item 1, 10-19
    assert store.list_tasks(text="100%").total == 0  # LIKE wildcards are literal
    assert store.list_tasks(since=time.time() + 10).total == 0
    assert store.matching_ids(skill="beta") == sorted(t.id for t in store.list_tasks(skill="beta", limit=100).items)
    counts = store.counts()
    assert counts["PENDING"] == 24 and counts["FAILED"] == 1 and set(counts) >= {"WAITING_HUMAN", "CANCELLED"}
    assert store.counts_by_skill()["alpha"] == {"PENDING": 11, "FAILED": 1}
    assert store.list_tasks(limit=1).to_dict()["items"][0].get("lease_token") is None


# -- bad input -----------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda s: s.enqueue("s", {"f": object()}), "not JSON-serialisable"),
    (lambda s: s.enqueue("s", {"big": "x" * (1 << 20)}), "over the limit"),
    (lambda s: s.enqueue("s", {"nan": math.nan}), "not JSON-serialisable"),
    (lambda s: s.enqueue("s", {"bad": "\ud800"}), "not valid Unicode"),
    (lambda s: s.enqueue("s", ["not", "a", "dict"]), "JSON object"),
    (lambda s: s.enqueue("s", {}, priority=0), "priority"),
    (lambda s: s.enqueue("s", {}, priority=11), "priority"),
    (lambda s: s.enqueue("s", {}, priority="5"), "priority"),
    (lambda s: s.enqueue("s", {}, priority=True), "priority"),
    (lambda s: s.enqueue("bad skill!", {}), "skill name"),
    (lambda s: s.enqueue("s", {}, max_attempts=0), "max_attempts"),
    (lambda s: s.enqueue("s", {}, delay_s=-1), "delay_s"),
    (lambda s: s.enqueue("s", {}, available_at=math.inf), "available_at"),
    (lambda s: s.enqueue("s", {}, depends_on=[10**9]), "does not exist"),
    (lambda s: s.enqueue("s", {}, depends_on="1"), "depends_on"),
    (lambda s: s.enqueue("s", {}, colour="red"), "unknown task field"),
    (lambda s: s.enqueue_many([{"skill": "s"}, {"skill": "s", "priority": 99}]), "priority"),
    (lambda s: s.list_tasks(status="DONEISH"), "unknown status"),
    (lambda s: s.list_tasks(limit=0), "limit"),
    (lambda s: s.claim("w", ["s"], lease_s=0), "lease_s"),
    (lambda s: s.claim("", ["s"]), "worker"),
    (lambda s: s.claim("w", ["bad skill!"]), "skill name"),
    (lambda s: s.claim("w", [["s"]]), "skill name"),  # not a name (and not hashable)
    (lambda s: s.wait_for_work(-1), "timeout"),
    # (an unknown checkpoint mode: test_store_sqlite.py, checkpoints are SQLite's)
    # found in review: these raised UnicodeEncodeError, OverflowError or AttributeError
    (lambda s: s.enqueue("s", {}, assigned_to="\ud800"), "not valid Unicode"),
    (lambda s: s.enqueue("s", {}, idempotency_key="\udcff"), "not valid Unicode"),
    (lambda s: s.enqueue("s", {}, created_by="\udcff"), "not valid Unicode"),
    (lambda s: s.claim("\ud800", ["s"]), "not valid Unicode"),
    (lambda s: s.enqueue("s", {}, depends_on=[2**70]), "too large"),
    (lambda s: s.enqueue("s", {}, delay_s=10**400), "delay_s"),
    (lambda s: s.enqueue("s", {}, available_at=10**400), "available_at"),
    (lambda s: s.claim("w", ["s"], lease_s=10**400), "lease_s"),
    (lambda s: s.list_tasks(since=10**400), "since"),
    (lambda s: s.wait_for_work(10**400), "timeout"),
    (lambda s: s.list_tasks(text=5), "text"),
    (lambda s: s.list_tasks(agent=[1]), "agent"),
    (lambda s: s.list_tasks(skill={"s": 1}), "skill"),
    (lambda s: s.cancel(1, by={"a": 1}), "by"),
    (lambda s: s.renew(1, [1]), "token"),
    (lambda s: s.claim("w", ["s"], prefer=["a"]), "prefer must be a dict"),
    (lambda s: s.claim("w", ["s"], prefer={"models": "a"}), "list of names"),
    (lambda s: s.claim("w", ["s"], prefer={"models": ["a"], "max_wait_s": -1}), "max_wait_s"),
    (lambda s: s.claim("w", ["s"], prefer={"skills": ["bad skill!"]}), "skill name"),
    (lambda s: s.claim("w", ["s"], prefer={"model": ["a"]}), "unknown field"),
])
def test_bad_input_raises_a_clear_error_and_writes_nothing(store, call, match):
    store.enqueue("s", {"seed": True})
    before = (store.counts(), store.last_event_id(), store.list_tasks(limit=1000).to_dict())
    with pytest.raises(InvalidInput, match=match):
        call(store)
    assert (store.counts(), store.last_event_id(), store.list_tasks(limit=1000).to_dict()) == before


def test_ids_no_task_can_have_are_not_found(store):
    for task_id in (2**70, -(2**70), 0, -1):
        assert store.get(task_id) is None
        with pytest.raises(NotFound):
            store.cancel(task_id)
    for task_id in ([1], "1", None, 1.5, True):
        with pytest.raises(InvalidInput, match="task id"):
            store.get(task_id)


def test_failure_text_that_is_not_valid_unicode_is_recorded_escaped(store):
    # A skill's error often quotes a file name decoded with surrogateescape;
    # recording the failure must not fail (that crashed the worker).
    t = store.enqueue("s", {}, max_attempts=1)
    c = store.claim("w", ["s"])
    failed = store.fail(t.id, c.lease_token, "cannot index caf\udce9.txt")
    assert failed.status == "FAILED" and failed.error == "cannot index caf\\udce9.txt"
    assert store.attempts(t.id)[-1]["error"] == failed.error


def test_wrong_types_for_a_running_task_are_refused_and_change_nothing(store):
    t = store.enqueue("s", {})
    c = store.claim("w", ["s"])
    before = (store.get(t.id), store.last_event_id())
    for call, match in ((lambda: store.fail(t.id, c.lease_token, "x", reason={"a": 1}), "reason"),
                        (lambda: store.ask_human(t.id, c.lease_token, "q", "yes"), "options"),
                        (lambda: store.complete(t.id, 12345), "token")):
        with pytest.raises(InvalidInput, match=match):
            call()
        assert (store.get(t.id), store.last_event_id()) == before


def test_iterables_are_read_once_not_consumed_by_the_checks(store):
    parent = store.enqueue("s", {})
    child = store.enqueue("s", {}, depends_on=iter([parent.id]))
    assert store.dependencies(child.id) == [parent.id] and child.deps_pending == 1
    c = store.claim("w", ["s"])
    parked = store.ask_human(c.id, c.lease_token, "which?", (o for o in ["x", "y"]))
    assert parked.question == {"question": "which?", "options": ["x", "y"]}


def test_payload_limit_is_configurable(store_factory):
    store = store_factory(max_payload_bytes=100)
    store.enqueue("s", {"x": "y" * 50})
    with pytest.raises(InvalidInput, match="100 bytes"):
        store.enqueue("s", {"x": "y" * 200})


def test_wait_for_work_returns_when_a_delayed_task_comes_due(store):
    store.enqueue("s", {}, delay_s=0.2)
    store.wait_for_work(0)  # first call binds the wake channel
    t0 = time.monotonic()
    assert store.wait_for_work(10) is True
    assert time.monotonic() - t0 < 5
    assert wait_until(lambda: store.claim("w", ["s"])) is not None


def test_complete_and_claim_is_fenced_and_hands_over_the_next_task(store):
    parent = store.enqueue("s", {"n": "parent"}, priority=1)
    other = store.enqueue("s", {"n": "other"}, priority=1)
    child = store.enqueue("s", {"n": "child"}, priority=9, depends_on=[parent.id])
    first = store.claim("w", ["s"])
    assert first.id == parent.id
    done, nxt = store.complete_and_claim(first.id, first.lease_token, {"ok": 1}, worker="w", skills=["s"])
    assert done.status == "DONE" and done.result == {"ok": 1}
    assert nxt.id == child.id and nxt.status == "RUNNING"  # promoted in the same transaction
    before = (store.counts(), store.last_event_id())
    with pytest.raises(LeaseLost):  # stale token: nothing completed, nothing claimed
        store.complete_and_claim(first.id, first.lease_token, None, worker="w", skills=["s"])
    assert (store.counts(), store.last_event_id()) == before
    done, nxt = store.complete_and_claim(nxt.id, nxt.lease_token, None, worker="w", skills=["s"])
    assert nxt.id == other.id
    done, nxt = store.complete_and_claim(nxt.id, nxt.lease_token, None, worker="w", skills=["s"])
    assert nxt is None and store.counts()["DONE"] == 3
    assert [a["outcome"] for a in store.attempts(child.id)] == ["done"]


def test_completion_wakes_waiters(store):
    t = store.enqueue("s", {})
    c = store.claim("w", ["s"])
    store.wait_for_work(0)  # binds this store's wake channel
    store.complete(t.id, c.lease_token)
    t0 = time.monotonic()
    assert store.wait_for_work(10) is True
    assert time.monotonic() - t0 < 5


def test_child_parked_or_running_while_its_parent_reruns_waits_for_it_again(store):
    # Found by the state-machine test: a child that was WAITING_HUMAN (or
    # RUNNING) while its DONE parent was retried must not be claimable again
    # before the parent finishes its new run.
    parent = store.enqueue("p", {})
    cp = store.claim("w", ["p"])
    store.complete(parent.id, cp.lease_token)
    parked = store.enqueue("c", {"n": "parked"}, depends_on=[parent.id])
    running = store.enqueue("c", {"n": "running"}, depends_on=[parent.id])
    c1 = store.claim("w", ["c"])
    store.ask_human(parked.id, c1.lease_token, "go on?")
    c2 = store.claim("w", ["c"])
    assert c2.id == running.id
    store.retry(parent.id)
    store.answer(parked.id, "yes")
    store.release(running.id, c2.lease_token)
    assert store.claim("w", ["c"]) is None
    cp = store.claim("w", ["p"])
    store.complete(parent.id, cp.lease_token)
    assert {store.claim("w", ["c"]).id, store.claim("w", ["c"]).id} == {parked.id, running.id}


def _running_child_of_a_rerun_parent(store, parent_dies: str, child_lease_s: float | None = None):
    """A child claimed after its parent was DONE; the parent is then retried
    and dies (fails for good, or is cancelled) while the child still runs."""
    parent = store.enqueue("p", {})
    cp = store.claim("wp", ["p"])
    store.complete(parent.id, cp.lease_token)
    child = store.enqueue("c", {}, depends_on=[parent.id])
    grandchild = store.enqueue("g", {}, depends_on=[child.id])
    cc = store.claim("wc", ["c"]) if child_lease_s is None else store.claim("wc", ["c"], lease_s=child_lease_s)
    store.retry(parent.id)
    if parent_dies == "fail":
        cp = store.claim("wp", ["p"])
        store.fail(parent.id, cp.lease_token, "boom", retryable=False)
    else:
        store.cancel(parent.id)
    assert store.get(child.id).status == "RUNNING"  # a running child finishes its attempt
    return parent, child, grandchild, cc


def _leave_running(store, how: str, child, cc) -> None:
    if how == "retryable_fail":
        store.fail(child.id, cc.lease_token, "transient")
    elif how == "release":
        store.release(child.id, cc.lease_token)
    elif how == "reap":
        # claimed with a short lease (below); nothing but the reaper ends it
        assert wait_until(lambda: store.reap_expired_leases()) == [child.id]
    elif how == "worker_died":
        assert store.recover_worker_tasks("wc") == [child.id]
    elif how == "ask_human":
        store.ask_human(child.id, cc.lease_token, "go on?")


@pytest.mark.parametrize("parent_dies", ["fail", "cancel"])
@pytest.mark.parametrize("how", ["retryable_fail", "release", "reap", "worker_died", "ask_human"])
def test_running_child_whose_parent_died_meanwhile_fails_instead_of_waiting(store, parent_dies, how):
    # Found in review: it went back to PENDING with a dead parent, unclaimable
    # for ever and refused by retry (not finished).
    parent, child, grandchild, cc = _running_child_of_a_rerun_parent(
        store, parent_dies, child_lease_s=0.2 if how == "reap" else None)
    _leave_running(store, how, child, cc)
    after = store.get(child.id)
    assert (after.status, after.error_reason) == ("FAILED", "dependency_failed"), how
    assert str(parent.id) in after.error
    assert store.get(grandchild.id).status == "FAILED"
    assert store.claim("wc", ["c"]) is None
    assert [a["outcome"] for a in store.attempts(child.id)][-1] != "running"
    events = [e["action"] for e in store.events(task_id=child.id)]
    assert events[-1] == "fail" and "retry_scheduled" not in events and "requeue" not in events
    counts = store.counts()
    assert counts["FAILED"] >= 2 and counts["PENDING"] == 0 and counts["RUNNING"] == 0


def test_child_parked_before_its_parent_died_fails_when_answered(store):
    parent = store.enqueue("p", {})
    cp = store.claim("wp", ["p"])
    store.complete(parent.id, cp.lease_token)
    child = store.enqueue("c", {}, depends_on=[parent.id])
    cc = store.claim("wc", ["c"])
    store.ask_human(child.id, cc.lease_token, "go on?")
    store.retry(parent.id)
    cp = store.claim("wp", ["p"])
    store.fail(parent.id, cp.lease_token, "boom", retryable=False)
    # a parked child is failed with its parent, like a pending one
    assert store.get(child.id).status == "FAILED"
    with pytest.raises(InvalidTransition):
        store.answer(child.id, "yes")


def test_the_records_enqueue_returns_are_the_stored_rows(store):
    """enqueue and both enqueue_many paths build their records without reading
    them back; each must equal what get() reads (a tuple is stored as a list)."""
    import dataclasses

    parent = store.enqueue("s", {"k": (1, 2)}, priority=7, created_by="me")
    batch = store.enqueue_many([{"skill": "s", "payload": {"i": 1}}, {"skill": "t", "priority": 2}])
    child = store.enqueue_many([{"skill": "s", "depends_on": [parent.id], "idempotency_key": "c"}])[0]
    later = store.enqueue("s", {}, delay_s=60, assigned_to="w1")
    for task in (parent, *batch, child, later):
        assert dataclasses.asdict(task) == dataclasses.asdict(store.get(task.id)), task.id
    assert parent.payload == {"k": [1, 2]} and child.deps_pending == 1


def test_a_roles_pending_depth_leaves_out_tasks_assigned_to_a_worker_by_name(store):
    """Issue 17 E: tasks assigned to a worker that does not exist drove
    autoscaling, though no worker of the role could claim them."""
    for _ in range(3):
        store.enqueue("s", {}, assigned_to="ghost")
    store.enqueue("s", {})
    assert store.pending_depth(["s"]) == 1  # what the role's workers (and extras) could claim
    assert store.pending_depth() == 4  # every claimable task, as the health page counts
    assert store.claim("w", ["s"]) is not None and store.claim("w", ["s"]) is None
