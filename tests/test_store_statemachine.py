"""Property-based test of the task state machine: hypothesis drives random
sequences of enqueue / claim / complete / fail / release / cancel / renew /
ask-answer / retry / recover / stale-token calls against a real store and a
small in-memory model, and checks after every step that they agree. Runs on
every backend: each example gets a fresh store from `store_factory`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fleet.db import InvalidTransition, LeaseLost

SKILLS = ("a", "b")
WORKERS = ("w1", "w2")
TERMINAL = ("DONE", "FAILED", "CANCELLED")
DEFAULT_MAX_ATTEMPTS = 2  # the store's option; a bulk-enqueued task gets it


class TaskModel(RuleBasedStateMachine):
    def __init__(self, store_factory):
        super().__init__()
        self.store_factory = store_factory
        # The poison-pill rule depends on timing (crashes soon after a claim while other tasks finish);
        # it has its own tests. Here a crash is only ever recorded and requeued.
        self.store = store_factory(backoff_base_s=0.0, backoff_max_s=0.0, default_max_attempts=DEFAULT_MAX_ATTEMPTS,
                                   max_crashes=10**6)
        self.tasks: dict[int, dict] = {}
        self.old_tokens: list[tuple[int, str]] = []

    def teardown(self):
        self.store_factory.discard(self.store)

    # -- model helpers ---------------------------------------------------
    def _ids(self, *statuses):
        return sorted(i for i, t in self.tasks.items() if t["status"] in statuses)

    def _deps_left(self, t):
        return sum(1 for p in t["deps"] if self.tasks[p]["status"] != "DONE")

    def _cascade(self, parent):
        for cid, child in self.tasks.items():
            if parent in child["deps"] and child["status"] in ("PENDING", "WAITING_HUMAN"):
                child["status"] = "FAILED"
                self._cascade(cid)

    def _parent_dead(self, t):
        """A parent failed or cancelled (while this task ran): it cannot wait again."""
        return any(self.tasks[p]["status"] in ("FAILED", "CANCELLED") for p in t["deps"])

    def _fail_now(self, tid):
        self.tasks[tid]["status"] = "FAILED"
        self._cascade(tid)

    def _cancel_now(self, tid):
        self.tasks[tid].update(status="CANCELLED", token=None, cancel=True)
        self._cascade(tid)

    def _drop_token(self, tid):
        t = self.tasks[tid]
        if t["token"]:
            self.old_tokens.append((tid, t["token"]))
        t["token"] = None

    def _running(self):
        return self._ids("RUNNING")

    # -- rules -----------------------------------------------------------
    @rule(skill=st.sampled_from(SKILLS), priority=st.integers(1, 10),
          max_attempts=st.integers(1, 3), dep_picks=st.lists(st.integers(0, 10**6), max_size=2),
          assigned=st.sampled_from((None, None, None, "w1")))
    def enqueue(self, skill, priority, max_attempts, dep_picks, assigned):
        existing = sorted(self.tasks)
        deps = sorted({existing[p % len(existing)] for p in dep_picks}) if existing else []
        task = self.store.enqueue(skill, {"n": len(self.tasks)}, priority=priority,
                                  max_attempts=max_attempts, depends_on=deps, assigned_to=assigned)
        failed_parent = any(self.tasks[p]["status"] in ("FAILED", "CANCELLED") for p in deps)
        self.tasks[task.id] = dict(status="FAILED" if failed_parent else "PENDING", attempts=0,
                                   max=max_attempts, priority=priority, skill=skill, deps=set(deps),
                                   cancel=False, token=None, worker=None, assigned=assigned)
        assert task.status == self.tasks[task.id]["status"]

    @rule(skills=st.lists(st.sampled_from(SKILLS), min_size=2, max_size=4), priority=st.integers(1, 10))
    def enqueue_batch(self, skills, priority):
        """The bulk path (no keys, no dependencies): its counts are written per batch."""
        tasks = self.store.enqueue_many([{"skill": s, "payload": {"i": i}, "priority": priority}
                                         for i, s in enumerate(skills)])
        for task, skill in zip(tasks, skills, strict=True):
            self.tasks[task.id] = dict(status="PENDING", attempts=0, max=DEFAULT_MAX_ATTEMPTS,
                                       priority=priority, skill=skill, deps=set(), cancel=False,
                                       token=None, worker=None, assigned=None)
            assert self.store.get(task.id).skill == skill

    @rule(worker=st.sampled_from(WORKERS), skills=st.sets(st.sampled_from(SKILLS)))
    def claim(self, worker, skills):
        candidates = [
            (-t["priority"], i) for i, t in self.tasks.items()
            if t["status"] == "PENDING" and self._deps_left(t) == 0
            and (t["assigned"] == worker or (t["assigned"] is None and t["skill"] in skills))
        ]
        got = self.store.claim(worker, sorted(skills), lease_s=600)
        if not candidates:
            assert got is None
            return
        expected = min(candidates)[1]
        assert got is not None and got.id == expected
        t = self.tasks[expected]
        t.update(status="RUNNING", token=got.lease_token, worker=worker)
        t["attempts"] += 1
        assert got.attempts == t["attempts"]

    @precondition(lambda self: self._running())
    @rule(pick=st.integers(0, 10**6))
    def complete(self, pick):
        tid = self._running()[pick % len(self._running())]
        self.store.complete(tid, self.tasks[tid]["token"], {"ok": tid})
        self._drop_token(tid)
        self.tasks[tid]["status"] = "DONE"

    @precondition(lambda self: self._running())
    @rule(pick=st.integers(0, 10**6), retryable=st.booleans())
    def fail(self, pick, retryable):
        tid = self._running()[pick % len(self._running())]
        t = self.tasks[tid]
        self.store.fail(tid, t["token"], "boom", retryable=retryable)
        self._drop_token(tid)
        if t["cancel"]:
            self._cancel_now(tid)
        elif retryable and t["attempts"] < t["max"] and not self._parent_dead(t):
            t["status"] = "PENDING"
        else:
            self._fail_now(tid)

    @precondition(lambda self: self._running())
    @rule(pick=st.integers(0, 10**6))
    def release(self, pick):
        tid = self._running()[pick % len(self._running())]
        t = self.tasks[tid]
        self.store.release(tid, t["token"])
        self._drop_token(tid)
        t["attempts"] -= 1
        if t["cancel"]:
            self._cancel_now(tid)
        elif self._parent_dead(t):
            self._fail_now(tid)
        else:
            t["status"] = "PENDING"

    @precondition(lambda self: self._running())
    @rule(pick=st.integers(0, 10**6))
    def renew(self, pick):
        tid = self._running()[pick % len(self._running())]
        assert self.store.renew(tid, self.tasks[tid]["token"], 600) == self.tasks[tid]["cancel"]

    @precondition(lambda self: self._running())
    @rule(pick=st.integers(0, 10**6))
    def ask_human(self, pick):
        tid = self._running()[pick % len(self._running())]
        t = self.tasks[tid]
        self.store.ask_human(tid, t["token"], "continue?", ["yes", "no"])
        self._drop_token(tid)
        if t["cancel"]:
            self._cancel_now(tid)
        elif self._parent_dead(t):
            self._fail_now(tid)
        else:
            t["status"] = "WAITING_HUMAN"
            t["attempts"] -= 1

    @precondition(lambda self: self._ids("WAITING_HUMAN"))
    @rule(pick=st.integers(0, 10**6))
    def answer(self, pick):
        waiting = self._ids("WAITING_HUMAN")
        tid = waiting[pick % len(waiting)]
        self.store.answer(tid, "yes")
        self.tasks[tid]["status"] = "PENDING"

    @precondition(lambda self: self.tasks)
    @rule(pick=st.integers(0, 10**6))
    def cancel(self, pick):
        ids = sorted(self.tasks)
        tid = ids[pick % len(ids)]
        t = self.tasks[tid]
        if t["status"] in TERMINAL:
            try:
                self.store.cancel(tid)
            except InvalidTransition:
                return
            raise AssertionError(f"cancel of {t['status']} task {tid} was accepted")
        self.store.cancel(tid)
        if t["status"] == "RUNNING":
            t["cancel"] = True
        else:
            self._cancel_now(tid)

    @precondition(lambda self: self._ids(*TERMINAL))
    @rule(pick=st.integers(0, 10**6))
    def retry(self, pick):
        ids = self._ids(*TERMINAL)
        tid = ids[pick % len(ids)]
        t = self.tasks[tid]
        blocked = any(self.tasks[p]["status"] in ("FAILED", "CANCELLED") for p in t["deps"])
        try:
            self.store.retry(tid)
        except InvalidTransition:
            assert blocked
            return
        assert not blocked
        t.update(status="PENDING", attempts=0, cancel=False, token=None)

    @rule(worker=st.sampled_from(WORKERS))
    def recover_worker(self, worker):
        expected = sorted(i for i, t in self.tasks.items() if t["status"] == "RUNNING" and t["worker"] == worker)
        assert sorted(self.store.recover_worker_tasks(worker, "died")) == expected
        for tid in expected:
            t = self.tasks[tid]
            self._drop_token(tid)
            if t["cancel"]:
                self._cancel_now(tid)
            elif self._parent_dead(t):
                self._fail_now(tid)
            else:  # a crash does not use up one of the task's attempts
                t["status"] = "PENDING"
                t["attempts"] -= 1

    @precondition(lambda self: self.old_tokens)
    @rule(pick=st.integers(0, 10**6), op=st.sampled_from(("complete", "fail", "renew", "release")))
    def stale_token_is_refused(self, pick, op):
        tid, token = self.old_tokens[pick % len(self.old_tokens)]
        if self.tasks[tid]["token"] == token:
            return
        before = self.store.get(tid)
        try:
            if op == "complete":
                self.store.complete(tid, token, {"late": True})
            elif op == "fail":
                self.store.fail(tid, token, "late")
            elif op == "renew":
                self.store.renew(tid, token, 600)
            else:
                self.store.release(tid, token)
        except LeaseLost:
            assert self.store.get(tid) == before
            return
        raise AssertionError(f"stale token accepted by {op} on task {tid}")

    # -- invariants ------------------------------------------------------
    @invariant()
    def store_matches_model(self):
        for tid, t in self.tasks.items():
            row = self.store.get(tid)
            assert row.status == t["status"], (tid, row.status, t)
            assert row.attempts == t["attempts"], (tid, row.attempts, t)
            assert (row.lease_token is not None) == (t["status"] == "RUNNING")
            if t["status"] == "RUNNING":
                assert row.lease_token == t["token"]
            if t["status"] == "PENDING":
                assert row.deps_pending == self._deps_left(t), (tid, row.deps_pending, t)
        counts = self.store.counts()
        for status in ("PENDING", "RUNNING", "DONE", "FAILED", "WAITING_HUMAN", "CANCELLED"):
            assert counts[status] == len(self._ids(status))
        by_skill: dict[str, dict[str, int]] = {}
        for t in self.tasks.values():
            by_skill.setdefault(t["skill"], {}).setdefault(t["status"], 0)
            by_skill[t["skill"]][t["status"]] += 1
        assert self.store.counts_by_skill() == by_skill


SETTINGS = settings(
    max_examples=60, stateful_step_count=35, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_task_state_machine(store_factory):
    run_state_machine_as_test(lambda: TaskModel(store_factory), settings=SETTINGS)
