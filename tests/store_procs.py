"""Worker bodies for the store's multi-process tests (and the queue benchmark's
own processes are separate). Each runs in a real child process started with
multiprocessing 'spawn' or as `python tests/store_procs.py CMD SPEC ...`, and
opens its own store from the spec the test passed it (a dict, or its JSON text
on the command line): the same store as the parent's, on any backend.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fleet.db import LeaseLost
from tests.store_backends import open_from_spec


def open_and_enqueue(spec, n: int) -> None:
    """Open the store (perhaps the first to, creating it) and add one task."""
    store = open_from_spec(spec)
    store.enqueue("noop", {"n": n})
    store.close()


def race_rounds(spec, name: str, rounds: int, barrier, results) -> None:
    """Each round: wait at the barrier, try one claim, report what was won."""
    store = open_from_spec(spec)
    try:
        for r in range(rounds):
            barrier.wait(timeout=60)
            task = store.claim(name, ["race"], lease_s=30)
            if task is not None:
                store.complete(task.id, task.lease_token, {"winner": name})
            results.put((r, name, None if task is None else task.id))
            barrier.wait(timeout=60)
    finally:
        store.close()


def drain(spec, name: str, results) -> None:
    """Claim and complete until the queue is empty; report the ids done."""
    store = open_from_spec(spec)
    done: list[int] = []
    try:
        while True:
            task = store.claim(name, ["drain"], lease_s=60)
            if task is None:
                break
            store.complete(task.id, task.lease_token, {"by": name})
            done.append(task.id)
    finally:
        store.close()
    results.put((name, done))


def crash_loop(spec, name: str, seed: int) -> None:
    """Claim/complete forever with random pauses, so a SIGKILL from the
    parent lands at a random point: inside a transaction, between claim and
    complete, or between tasks. A lease lost to the reaper is not an error."""
    rnd = random.Random(seed)
    store = open_from_spec(spec)
    while True:
        task = store.claim(name, ["crash"], lease_s=0.3)
        if task is None:
            store.wait_for_work(0.05)
            continue
        time.sleep(rnd.random() * 0.004)  # the "work": a kill often lands here
        try:
            store.complete(task.id, task.lease_token, {"by": name})
        except LeaseLost:
            pass


def complete_and_exit(spec, task_id: int, token: str) -> None:
    """Complete one task and leave at once, without closing anything."""
    store = open_from_spec(spec)
    store.complete(task_id, token, {"by": "short-lived"})
    os._exit(0)


def wake_listener(spec, ready, results, rounds: int) -> None:
    """Wait for work; each time a task appears, claim it and report how long
    after its creation it was claimed (enqueue -> claim latency)."""
    store = open_from_spec(spec)
    store.wait_for_work(0)  # binds the wake socket before we say we are ready
    ready.set()
    got = 0
    while got < rounds:
        task = store.claim("listener", ["wake"], lease_s=30)
        if task is None:
            store.wait_for_work(30)
            continue
        results.put(time.time() - task.created_at)
        store.complete(task.id, task.lease_token)
        got += 1
    store.close()


def idle_waiter(spec, ready, seconds: float, results) -> None:
    """Wait for work that never comes; report the CPU seconds used."""
    store = open_from_spec(spec)
    store.wait_for_work(0)
    ready.set()
    cpu0 = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if store.claim("idle", ["never"], lease_s=30) is None:
            store.wait_for_work(max(0.0, deadline - time.monotonic()))
    results.put(time.process_time() - cpu0)
    store.close()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "complete_and_exit":
        complete_and_exit(args[0], int(args[1]), args[2])  # SPEC (JSON) TASK_ID TOKEN
    elif command == "crash_loop":
        crash_loop(args[0], args[1], int(args[2]))  # SPEC (JSON) NAME SEED
    else:
        raise SystemExit(f"unknown command {command!r}")
