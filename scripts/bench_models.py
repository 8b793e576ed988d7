"""Benchmark: the overhead of `call_model` (chain resolution, breaker/cool-down
admission in the store, usage row, result object) over a direct httpx call to
the same loopback Ollama-compatible server. Prints p50/p99 side by side.

    .venv/bin/python scripts/bench_models.py --quick      # ~200 calls each
    .venv/bin/python scripts/bench_models.py -n 3000

Target: <= 2 ms added at p50. The fake server runs in its own process so it
does not share the benchmark's interpreter lock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

SERVER = r"""
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from fakes.model_servers import FakeOllama, Reply
srv = FakeOllama(models=["bench:1b"], default=Reply(text="a short reply of six words", usage={"input": 20, "output": 6}))
srv.start()
print(srv.url, flush=True)
sys.stdin.read()
srv.stop()
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100.0 * (len(ordered) - 1)))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--iterations", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="200 iterations (a few seconds)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    n = 200 if args.quick else args.iterations

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(REPO)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        home = tempfile.mkdtemp(prefix="bench-models-")
        os.environ["FLEET_HOME"] = home
        Path(home, "fleet.toml").write_text(
            f'[models]\nchain = ["ollama"]\n\n[providers.ollama]\ntype = "ollama"\nbase_url = "{url}"\n'
            f'model = "bench:1b"\nmin_spacing_ms = 0\n')
        import httpx

        from fleet.config import load_config
        from fleet.skills._models import call_model

        cfg = load_config(home)
        body = {"model": "bench:1b", "messages": [{"role": "user", "content": "hello bench"}], "stream": False,
                "options": {"num_predict": 64}, "keep_alive": "10m"}
        client = httpx.Client(timeout=30)

        def direct():
            r = client.post(f"{url}/api/chat", json=body)
            r.raise_for_status()
            return r.json()["message"]["content"]

        def routed():
            return call_model("hello bench", cfg, max_tokens=64, skill="bench").text

        for _ in range(max(20, n // 10)):  # warm up both paths (connections, imports, caches)
            direct()
            routed()
        t_direct, t_routed = [], []
        for _ in range(n):  # interleaved so drift on a shared machine hits both alike
            t0 = time.perf_counter()
            direct()
            t1 = time.perf_counter()
            routed()
            t2 = time.perf_counter()
            t_direct.append((t1 - t0) * 1000)
            t_routed.append((t2 - t1) * 1000)
        rows = []
        for name, values in (("direct httpx", t_direct), ("call_model", t_routed)):
            rows.append((name, pct(values, 50), pct(values, 99), statistics.fmean(values)))
        added_p50 = rows[1][1] - rows[0][1]
        added_p99 = rows[1][2] - rows[0][2]
        print(f"call_model overhead vs direct httpx, {n} calls each, loopback Ollama fake (separate process)")
        print(f"{'path':<14} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for name, p50, p99, mean in rows:
            print(f"{name:<14} {p50:>8.3f} {p99:>8.3f} {mean:>8.3f}")
        print(f"{'added':<14} {added_p50:>8.3f} {added_p99:>8.3f} {rows[1][3] - rows[0][3]:>8.3f}")
        verdict = "PASS" if added_p50 <= 2.0 else "OVER"
        print(f"target: <= 2 ms added at p50 -> {verdict} ({added_p50:.3f} ms)")
        from fleet.db import open_store

        written = len(open_store(cfg).usage_rows(skill="bench", limit=10 ** 7))
        print(f"usage rows written: {written} (one per routed call, warm-up included)")
        if args.json:
            print(json.dumps({"iterations": n, "direct_p50_ms": rows[0][1], "direct_p99_ms": rows[0][2],
                              "call_model_p50_ms": rows[1][1], "call_model_p99_ms": rows[1][2],
                              "added_p50_ms": added_p50, "added_p99_ms": added_p99}))
        return 0 if added_p50 <= 2.0 else 1
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
