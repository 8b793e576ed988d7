"""Chaos: 2,000 tasks through the real fleet while random workers are SIGKILLed.
Every task ends DONE with exactly one successful attempt; the database is intact."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.fakes.fleetproc import (
    fleet,  # noqa: F401 (fixture)
    stop,
    wait_until,
)

N_TASKS = 2000


@pytest.mark.slow
def test_chaos_every_task_done_exactly_once(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 3},
                      supervisor={"backoff_initial_s": 0.05, "backoff_max_s": 0.3, "backoff_reset_s": 1.0,
                                  "crash_loop_count": 10000})
    store = fleet.store
    wait_until(lambda: sum(1 for a in store.list_agents() if a["name"].startswith("coder_")
                           and a["status"] == "idle") == 3, 30, what="3 workers up")
    # 5 ms of work per task: the drain takes >= 3 s on any machine, so the
    # killer below always gets its kills in while tasks are in flight.
    ids = [t.id for t in store.enqueue_many(
        [{"skill": "noop", "payload": {"n": i, "sleep_s": 0.005}, "max_attempts": 100} for i in range(N_TASKS)])]
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 90
    while store.counts()["DONE"] < N_TASKS:
        assert time.monotonic() < deadline, f"stuck: {store.counts()}"
        victims = [a["pid"] for a in store.list_agents()
                   if a["name"].startswith("coder_") and a["status"] in ("idle", "busy") and a["pid"]]
        if victims and kills < 25:
            try:
                os.kill(rng.choice(victims), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        time.sleep(0.15)
    assert kills >= 10
    counts = store.counts()
    assert counts["DONE"] == N_TASKS and counts["FAILED"] == 0 and counts["RUNNING"] == 0
    done_attempts = {}
    for tid in ids:
        outcomes = [a["outcome"] for a in store.attempts(tid)]
        done_attempts[tid] = outcomes.count("done")
        assert store.get(tid).result == {"n": tid - ids[0], "ok": True}
    assert set(done_attempts.values()) == {1}
    assert store.integrity_check() == "ok"
    assert stop(sup) == 0
