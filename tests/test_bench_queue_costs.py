"""scripts/bench_queue_costs.py replays the store's own SQL outside the store.
Its figures mean something only while that replica writes what the store
writes; this keeps it honest when the queue's statements or schema change.
(Timings are printed by the script, never asserted.)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_queue_costs.py"


def _costs():
    spec = importlib.util.spec_from_file_location("bench_queue_costs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replica_writes_what_the_store_writes():
    costs = _costs()
    rates, pages = costs.run(400, 1)
    assert set(rates) == set(pages) == set(costs.ROWS)
    assert all(len(r) == 1 and r[0] > 0 for r in rates.values())
    # the same statements on the same schema touch the same pages
    assert abs(pages[costs.REPLICA] - pages[costs.API]) <= 0.5, pages
    # every part of the contract it leaves out is pages it no longer writes
    for label in costs.ROWS:
        if label.startswith("  without"):
            assert pages[label] < pages[costs.REPLICA] - 0.5, (label, pages)
    assert pages[costs.ALL_FOUR] < pages[costs.API] / 3, pages
    # one row per index of tasks and task_attempts, read from the schema; an
    # index the hot path never writes may save nothing, none adds pages
    each = [label for label in costs.ROWS if label.startswith(costs.ONE_INDEX)]
    assert {label[len(costs.ONE_INDEX):] for label in each} >= {"ix_tasks_skill", "ix_attempts_task"}
    assert "ix_tasks_claim" not in costs._EACH_INDEX
    for label in each:
        assert pages[label] <= pages[costs.REPLICA] + 0.3, (label, pages)
    assert pages[costs.ONE_INDEX + "ix_attempts_task"] < pages[costs.REPLICA] - 0.5, pages


def test_script_prints_its_table():
    r = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "200", "--rounds", "1"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert any(line.startswith("Store.complete_and_claim (the API)") for line in lines), r.stdout
    assert "WAL pages" in r.stdout and "of floor" in r.stdout
