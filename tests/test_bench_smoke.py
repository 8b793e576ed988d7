"""The queue and fleet benchmarks run in their quickest mode and print their
one table (every figure row, its target and a PASS/MISS verdict). Figures
are never asserted: they are timings, printed by the scripts."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(script: str) -> str:
    r = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--smoke"], cwd=REPO,
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r.stdout


def _rows(out: str, head: str) -> dict[str, str]:
    """The table's rows after its header line, by their first column's text."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    rows = {}
    for line in lines[start + 2:]:
        if line.startswith("command:") or not line.strip():
            break
        rows[line[:60].strip()] = line
    return rows


def test_bench_queue_prints_its_table():
    out = _run("bench_queue.py")
    rows = _rows(out, "figure ")
    assert len(rows) >= 10, out
    for figure in ("drain 2p, worker path, NORMAL", "drain 2p, worker path, FULL", "bulk enqueue",
                   "single enqueue, NORMAL", "idle wake-up enqueue -> claim p50",
                   "idle wake-up enqueue -> claim p99", "idle consumer CPU", "claim p99,"):
        line = next((v for k, v in rows.items() if k.startswith(figure)), None)
        assert line is not None, (figure, out)
        assert line.rstrip().endswith(("PASS", "MISS")), line
    assert "% of the floor" in out and "huey" in out and "sync modes:" in out


def test_bench_fleet_prints_its_table():
    out = _run("bench_fleet.py")
    rows = _rows(out, "figure ")
    for figure in ("no-op tasks/s, 2 worker processes", "overhead per task, p50", "overhead per task, mean",
                   "idle fleet CPU"):
        line = next((v for k, v in rows.items() if k.startswith(figure)), None)
        assert line is not None, (figure, out)
        assert line.rstrip().endswith(("PASS", "MISS")), line
    # Both fleet workers must run tasks; huey_consumer may start its second
    # process after the first has drained a smoke-sized run (seen under load).
    seen = re.search(r"processes seen running tasks: fleet (\d+), huey (\d+)", out)
    assert "huey_consumer" in out and seen and seen[1] == "2" and int(seen[2]) >= 1, out


def test_history_loader_keeps_the_store_consistent(tmp_path):
    """bench_queue loads finished history with plain SQL; the store must see
    it as its own (counts, claims that skip it)."""
    spec = importlib.util.spec_from_file_location("bench_queue", REPO / "scripts" / "bench_queue.py")
    bench_queue = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_queue)
    from fleet.db import Store

    path = tmp_path / "fleet.db"
    store = Store(path)
    try:
        store.enqueue("noop", {"i": 1})
        assert bench_queue.load_finished_history(str(path), 5000) == 5000
        assert store.counts()["DONE"] == 5000 and store.counts()["PENDING"] == 1
        task = store.claim("w", ["noop"])
        assert task is not None and task.payload == {"i": 1}
        store.complete(task.id, task.lease_token)
        assert store.claim("w", ["noop"]) is None
        assert store.counts()["DONE"] == 5001
    finally:
        store.close()


def test_bench_queue_on_postgresql_prints_fleet_beside_procrastinate(tmp_path):
    from tests.conftest import require_system_part
    from tests.store_backends import PostgreSQLBackend

    missing = PostgreSQLBackend(tmp_path).missing()
    require_system_part(missing is None, *(missing or ("", "")))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_queue.py"), "--backend", "postgresql",
                        "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    lines = r.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("system "))
    rows = {re.split(r"\s{2,}", line)[0]: line for line in lines[start + 2:start + 4]}
    assert set(rows) == {"fleet (ours) complete_and_claim", "procrastinate (PsycopgConnector)"}, r.stdout
    for line in rows.values():
        assert len(re.split(r"\s{2,}", line.strip())) == 10, line  # every figure printed
    assert "server commit rate" in r.stdout and "drain 4p fleet / procrastinate" in r.stdout
    assert "fleet idle latency p50" in r.stdout


def test_bench_models_capacity_prints_fleet_against_fifo():
    # a tiny backlog: the table and the verdict lines are there; the figures
    # are timings (a MISS exits 1 and is not a test failure)
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_models.py"), "--capacity", "--tasks", "16",
                        "--models", "2", "--slots", "2", "--tokens", "8", "--swap-s", "0.02"], cwd=REPO,
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode in (0, 1), r.stdout[-2000:] + r.stderr[-4000:]
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.split()[:1] in (["Fleet"], ["FIFO"])}
    assert set(rows) == {"Fleet", "FIFO"} and "claiming " in r.stdout, r.stdout
    for line in rows.values():
        busy, swaps, _window, _makespan, done = line.split()[1:]
        assert busy.endswith("%") and int(swaps) >= 0 and int(done) == 16, line
    assert "target: slots busy >= 95 %" in r.stdout and "target: swaps <= 1/10 of FIFO's" in r.stdout
