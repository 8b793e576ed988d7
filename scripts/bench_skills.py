"""Benchmark of the no-model skills on this repository's own source, in a temporary
fleet home: rag_index (full build, then an unchanged re-index), rag_query latency
(p50/p99), code_quality and security_review wall times. Prints a table.

    .venv/bin/python scripts/bench_skills.py            # fleet/ + tests/, 50 queries, 3 runs
    .venv/bin/python scripts/bench_skills.py --quick    # fleet/ only, 20 queries, 1 run
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUERIES = ["reap expired leases", "claim task lease", "circuit breaker", "offline mode", "WAL checkpoint",
           "heartbeat", "payload schema", "dependency", "backoff jitter", "secrets file", "NeedsHuman",
           "FTS5 index", "atomic write", "model provider", "dashboard token", "supervisor respawn",
           "hw_state tier", "idempotency key", "budget exceeded", "summarize extractive"]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer files, queries and runs")
    args = ap.parse_args(argv)
    roots = [REPO / "fleet"] if args.quick else [REPO / "fleet", REPO / "tests"]
    n_queries, runs = (20, 1) if args.quick else (50, 3)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FLEET_HOME"] = tmp
        from fleet.config import load_config
        from fleet.skills import code_quality, rag_index, rag_query, security_review

        cfg = load_config(tmp)
        log = logging.getLogger("bench")
        payload = {"paths": [str(r) for r in roots], "include_knowledge": False}
        built, t_build = timed(lambda: rag_index.run(payload, cfg, log))
        again, t_again = timed(lambda: rag_index.run(payload, cfg, log))
        lat = []
        for i in range(n_queries):
            _, t = timed(lambda q=QUERIES[i % len(QUERIES)]: rag_query.run({"query": q, "limit": 8}, cfg, log))
            lat.append(t * 1000)
        lat.sort()
        cq = [timed(lambda: code_quality.run({"path": str(REPO / "fleet")}, cfg, log))[1] for _ in range(runs)]
        sr = [timed(lambda: security_review.run({"path": str(REPO / "fleet")}, cfg, log))[1] for _ in range(runs)]
    rows = [
        ("rag_index full build", f"{t_build:.2f} s", f"{built['indexed']} files, {built['index']['chunks']} chunks"),
        ("rag_index unchanged re-index", f"{t_again * 1000:.0f} ms", f"{again['unchanged']} unchanged, {again['indexed']} re-indexed"),
        ("rag_query p50", f"{lat[len(lat) // 2]:.1f} ms", f"{n_queries} queries"),
        ("rag_query p99", f"{lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.1f} ms", ""),
        ("code_quality fleet/ (AST + ruff)", f"{statistics.median(cq):.2f} s", f"median of {runs}"),
        ("security_review fleet/ (bandit + secrets)", f"{statistics.median(sr):.2f} s", f"median of {runs}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>10}  {note}")
    print(f"\n(command: .venv/bin/python scripts/bench_skills.py{' --quick' if args.quick else ''}; "
          "figures depend on the machine and its load)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
