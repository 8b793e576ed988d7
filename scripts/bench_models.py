"""Benchmark: the overhead of `call_model` (chain resolution, breaker/cool-down
admission in the store, usage row, result object) over a direct httpx call to
the same loopback Ollama-compatible server. Prints p50/p99 side by side.

    .venv/bin/python scripts/bench_models.py --quick      # ~200 calls each
    .venv/bin/python scripts/bench_models.py -n 3000

Target: <= 2 ms added at p50. The fake server runs in its own process so it
does not share the benchmark's interpreter lock.

`--capacity`: how busy a real worker keeps a model server with parallel slots.
A loopback Ollama fake (tests/fakes/slot_server.py) has K slots, a fixed
tokens/s per slot and one model in memory (another costs a swap delay); a
backlog of mixed-model tasks runs through a real worker process
([workers.concurrency]) twice, with Fleet's model-aware claiming and with
plain FIFO claiming, and the table shows slot utilisation while the backlog
lasted and the number of swaps. hw_state.json is written from the server's
loaded model, as the hardware supervisor would. Targets: >= 95 % of slots
busy (Fleet); swaps <= 1/10 of FIFO's.

    .venv/bin/python scripts/bench_models.py --capacity   # ~45 s
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
    cap = ap.add_argument_group("--capacity: slots, swaps and model-aware claiming")
    cap.add_argument("--capacity", action="store_true", help="run the capacity benchmark instead")
    cap.add_argument("--slots", type=int, default=4, help="parallel slots of the fake server (default 4)")
    cap.add_argument("--concurrency", type=int, default=0,
                     help="tasks the worker runs at once (default: slots + 4, so the server always has "
                          "the next request queued)")
    cap.add_argument("--tasks", type=int, default=200, help="backlog size (default 200)")
    cap.add_argument("--models", type=int, default=3, help="models in the backlog, mixed at random (default 3)")
    cap.add_argument("--tokens", type=int, default=30, help="tokens generated per request (default 30)")
    cap.add_argument("--tps", type=float, default=160.0, help="tokens/s of one slot (default 160)")
    cap.add_argument("--swap-s", type=float, default=0.075,
                     help="seconds to swap the model in (default 0.075: 0.4 of a request, as 5 s against 12 s)")
    cap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args(argv)
    if args.capacity:
        return capacity(args)
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


# -- --capacity --------------------------------------------------------------
def _capacity_home(url: str, concurrency: int, model_aware: bool, first_model: str) -> str:
    import tomlkit

    home = tempfile.mkdtemp(prefix="bench-capacity-")
    roles = {"coder_count": 0, "researcher": 0, "archivist": 0, "analyst": 0, "security": 0, "planner": 0}
    doc = {
        "workers": {**roles, "bench": 1, "loaded_model_max_wait_s": 120.0 if model_aware else 0.0,
                    "concurrency": {"bench": concurrency}},
        "affinity": {"bench": ["modelchat"]},
        "supervisor": {"heartbeat_interval_s": 1.0, "services": []},
        "skills": {"extra_paths": [str(REPO / "tests" / "fakes" / "skills")]},
        "hardware": {"interval_s": 0.5},
        "models": {"chain": ["local"], "max_wait_s": 0.0},
        "providers": {"local": {"type": "ollama", "base_url": url, "model": first_model, "min_spacing_ms": 0,
                                "timeout_s": 120.0}},
    }
    Path(home, "fleet.toml").write_text(tomlkit.dumps(doc))
    return home


def _hw_writer(cfg: dict, server, stop) -> None:
    """Stand in for the hardware supervisor: hw_state.json names the model
    the server holds, rewritten every 0.2 s."""
    from fleet.hw_state import hw_state_path, write_hw_state

    path = hw_state_path(cfg)
    while not stop.is_set():
        now = time.time()
        loaded = [{"name": server.current}] if server.current else []
        write_hw_state(path, {
            "schema_version": 1, "written_at": now, "interval_s": 0.5, "host": "bench", "source": "cpu",
            "tier": {"name": "cpu", "model": None, "num_gpu": 0, "reason": "bench", "changed_at": now},
            "models": {"server_url": server.url, "server_reachable": True, "loaded": loaded,
                       "conductor_loaded": None}})
        stop.wait(0.2)


def _capacity_run(server, backlog: list[str], concurrency: int, model_aware: bool) -> dict:
    import threading

    from fleet.config import load_config
    from fleet.db import open_store

    server.reset(backlog[0])
    home = _capacity_home(server.url, concurrency, model_aware, backlog[0])
    cfg = load_config(home)
    store = open_store(cfg)
    store.enqueue_many([{"skill": "modelchat", "payload": {"model": m}} for m in backlog])
    stop = threading.Event()
    writer = threading.Thread(target=_hw_writer, args=(cfg, server, stop), daemon=True)
    writer.start()
    env = dict(os.environ, FLEET_HOME=home, PYTHONPATH=str(REPO))
    worker = subprocess.Popen([sys.executable, str(REPO / "fleet" / "worker.py"), "--role", "bench"],
                              cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = store.counts()
            if counts.get("DONE", 0) + counts.get("FAILED", 0) >= len(backlog):
                break
            if worker.poll() is not None:
                raise SystemExit(f"the bench worker exited {worker.returncode}: {worker.stderr.read()[-2000:]}")
            time.sleep(0.1)
        counts = store.counts()
    finally:
        worker.terminate()
        worker.wait(30)
        stop.set()
        writer.join(5)
        store.close()
    util, window = server.utilisation()
    spans = server.spans
    makespan = max(e for _, e in spans) - min(server.arrivals) if spans else 0.0
    t0 = min(server.arrivals) if server.arrivals else 0.0
    return {"utilisation": util, "window_s": window, "swaps": server.swaps,
            "swap_log": [[round(t - t0, 3), a, b] for t, a, b in server.swap_log], "done": counts.get("DONE", 0),
            "failed": counts.get("FAILED", 0), "makespan_s": makespan, "home": home}


def capacity(args) -> int:
    import random

    sys.path.insert(0, str(REPO))
    from tests.fakes.slot_server import SlotOllama

    if args.slots < 1 or args.tasks < 2 or args.models < 1 or args.tokens < 1 or args.tps <= 0 or args.swap_s < 0:
        print("bench_models --capacity: --slots, --tasks (>= 2), --models and --tokens must be positive, "
              "--tps above 0 and --swap-s at least 0", file=sys.stderr)
        return 2
    concurrency = args.concurrency or args.slots + 4
    if not 1 <= concurrency <= 64:
        print("bench_models --capacity: --concurrency must be 1..64 ([workers.concurrency] limit)", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    names = [f"model{i}:8b" for i in range(args.models)]
    backlog = [rng.choice(names) for _ in range(args.tasks)]
    gen_s = args.tokens / args.tps
    print(f"capacity: {args.slots} slots, {args.tokens} tokens/request at {args.tps:g} tokens/s per slot "
          f"({gen_s:.2f} s), swap {args.swap_s:g} s, {args.tasks} tasks over {args.models} models "
          f"(seed {args.seed}), one worker running {concurrency} at once")
    results = {}
    with SlotOllama(slots=args.slots, tokens_per_s=args.tps, tokens=args.tokens, swap_s=args.swap_s) as server:
        for label, aware in (("Fleet", True), ("FIFO", False)):
            results[label] = _capacity_run(server, backlog, concurrency, aware)
    print(f"{'claiming':<10} {'slots busy':>11} {'swaps':>6} {'backlog s':>10} {'makespan s':>11} {'done':>5}")
    for label, r in results.items():
        print(f"{label:<10} {r['utilisation'] * 100:>10.1f}% {r['swaps']:>6} {r['window_s']:>10.2f} "
              f"{r['makespan_s']:>11.2f} {r['done']:>5}")
    fleet, fifo = results["Fleet"], results["FIFO"]
    busy_ok = fleet["utilisation"] >= 0.95
    swaps_ok = fleet["swaps"] * 10 <= fifo["swaps"]
    print(f"target: slots busy >= 95 % while the backlog lasts (Fleet) -> {'PASS' if busy_ok else 'MISS'} "
          f"({fleet['utilisation'] * 100:.1f} %)")
    print(f"target: swaps <= 1/10 of FIFO's -> {'PASS' if swaps_ok else 'MISS'} ({fleet['swaps']} vs {fifo['swaps']})")
    failed = sum(r["failed"] for r in results.values())
    if failed or any(r["done"] != len(backlog) for r in results.values()):
        print(f"warning: {failed} task(s) failed; see the worker logs under {fleet['home']} and {fifo['home']}")
        return 1
    if args.json:
        print(json.dumps({k: {f: v for f, v in r.items() if f != "home"} for k, r in results.items()}))
    return 0 if busy_ok and swaps_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
