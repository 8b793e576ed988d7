#!/usr/bin/env python3
"""Benchmark of the hardware supervisor's overhead: the cost of one poll
(in-process, wall and CPU ms) and the CPU share of the real hw_supervisor
process over a window (target: <= 0.3 % of one core at a 5 s interval).

    python scripts/bench_hw.py            # 50 polls, 60 s window at 5 s
    python scripts/bench_hw.py --quick    # 10 polls, 12 s window
Runs in a temporary fleet home (no operator data touched) unless --home is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import psutil


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_home(home: str | None) -> str:
    if home:
        return os.path.abspath(home)
    home = tempfile.mkdtemp(prefix="fleet-bench-hw-")
    with open(os.path.join(home, "fleet.toml"), "w") as fh:  # no model server: measure the probes only
        fh.write(f'[providers.ollama]\ntype = "ollama"\nbase_url = "http://127.0.0.1:{_dead_port()}"\n'
                 '[model_server]\nprobe_timeout_s = 0.5\n')
    return home


def poll_cost(home: str, polls: int) -> dict:
    from fleet.config import load_config
    from fleet.db import open_store
    from fleet.hw_supervisor import HwSupervisor

    cfg = load_config(home)
    store = open_store(cfg)
    sup = HwSupervisor(cfg, store=store)
    try:
        sup.poll_once()  # warm-up: NVML init, first psutil reads
        wall, cpu = [], []
        for _ in range(polls):
            w0, c0 = time.perf_counter(), time.process_time()
            state = sup.poll_once()
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return {"source": state["source"], "gpus": len(state["gpus"]), "tier": state["tier"]["name"],
                "wall_ms_mean": statistics.mean(wall), "wall_ms_max": max(wall),
                "cpu_ms_mean": statistics.mean(cpu), "cpu_ms_max": max(cpu)}
    finally:
        sup.close()
        store.close()


def process_cpu(home: str, interval: float, window: float) -> dict:
    env = dict(os.environ, FLEET_HOME=home, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "fleet", "hw_supervisor.py"),
                             "--interval", str(interval)], cwd=REPO, env=env)
    state = os.path.join(home, "hw_state.json")
    try:
        end = time.monotonic() + 30
        while not os.path.exists(state) and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(min(1.0, interval))  # past start-up (imports, NVML init)
        p = psutil.Process(proc.pid)
        t0, c0 = time.monotonic(), sum(p.cpu_times()[:2])
        time.sleep(window)
        t1, c1 = time.monotonic(), sum(p.cpu_times()[:2])
        rss = p.memory_info().rss
        return {"cpu_pct": 100.0 * (c1 - c0) / (t1 - t0), "window_s": t1 - t0, "rss_mb": rss / 1e6}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 polls and a 12 s window")
    ap.add_argument("--polls", type=int, help="polls timed in-process (default 50, quick 10)")
    ap.add_argument("--window", type=float, help="seconds the process CPU is measured (default 60, quick 12)")
    ap.add_argument("--interval", type=float, default=5.0, help="hw_supervisor interval (default 5)")
    ap.add_argument("--home", help="fleet home to use (default: a fresh temporary one)")
    args = ap.parse_args(argv)
    polls = args.polls or (10 if args.quick else 50)
    window = args.window or (12.0 if args.quick else 60.0)
    logging.basicConfig(level=logging.ERROR)  # the probes' own warnings (e.g. no NVML) are not results
    home = prepare_home(args.home)
    try:
        return run(args, home, polls, window)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)


def run(args, home: str, polls: int, window: float) -> int:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"machine: {psutil.cpu_count()} cores, load average {load}; fleet home {home}")
    c = poll_cost(home, polls)
    print(f"poll cost ({polls} polls, source {c['source']}, {c['gpus']} GPU(s), tier {c['tier']}): "
          f"wall {c['wall_ms_mean']:.2f} ms mean / {c['wall_ms_max']:.2f} ms max, "
          f"CPU {c['cpu_ms_mean']:.2f} ms mean / {c['cpu_ms_max']:.2f} ms max")
    est = 100.0 * c["cpu_ms_mean"] / 1000.0 / args.interval
    print(f"estimated from poll cost at a {args.interval:g} s interval: {est:.3f} % of one core")
    p = process_cpu(home, args.interval, window)
    verdict = "OK" if p["cpu_pct"] <= 0.3 or args.interval < 5 else "OVER the 0.3 % target"
    print(f"hw_supervisor process over {p['window_s']:.0f} s at a {args.interval:g} s interval: "
          f"{p['cpu_pct']:.3f} % of one core ({verdict}; CPU time is counted in 10 ms ticks, so use a "
          f"60 s window for a figure); RSS {p['rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
