"""Benchmark: one code-factory workflow, the scripted happy path, on a real
fleet (supervisor and worker processes) in a temp home, against loopback
Anthropic and OpenAI-compatible fakes scripted by prompt, on a small git
repository made in a temp dir. Prints the time from approval to done, the
model calls per phase and Fleet's own overhead per phase: the phase's wall
time (from the previous phase's end, or from the approval) less the time in
model calls (their recorded latency) and in the gates' subprocesses.

    .venv/bin/python scripts/bench_workflow.py                    # the models answer at once
    .venv/bin/python scripts/bench_workflow.py --model-delay 1.0  # each model call takes 1 s

Target: Fleet overhead <= 5 % of the wall time when each model call takes 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

BUGGY = "def page(items, number, size):\n    return items[number * size:(number + 1) * size - 1]\n"
FIXED = BUGGY.replace("size - 1]", "size]")
TESTS = "from pager import page\n\n\ndef test_full_page():\n    assert page(list(range(10)), 0, 3) == [0, 1, 2]\n"
# pytest without this venv's plugins (their loading takes seconds; the gate's clean environment has no
# PYTEST_DISABLE_PLUGIN_AUTOLOAD, so the command sets it itself)
TEST_COMMAND = ("python -c \"import os, sys; os.environ['PYTEST_DISABLE_PLUGIN_AUTOLOAD'] = '1'; import pytest; "
                "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider']))\"")
PLAN = {"goal": "Fix the off-by-one in pagination", "steps": ["return whole pages"], "files": ["pager.py"],
        "criteria": ["page(items, 0, 3) returns three items"]}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path) -> tuple[Path, str]:
    repo = root / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "Bench")
    (repo / "pager.py").write_text(BUGGY)
    (repo / "test_pager.py").write_text(TESTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    (repo / "pager.py").write_text(FIXED)
    diff = git(repo, "diff")
    git(repo, "checkout", "--", "pager.py")
    return repo, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-delay", type=float, default=0.0, help="seconds each model call takes (default 0)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)

    from fakes.fleetproc import start_supervisor, stop, wait_until, write_config
    from fakes.model_servers import FakeAnthropic, FakeOpenAI, Reply

    from fleet.db import open_store
    from fleet.workflow.engine import start

    with tempfile.TemporaryDirectory(prefix="bench-workflow-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        os.environ.update({"FLEET_HOME": str(home), "HOME": str(root), "ANTHROPIC_API_KEY": "sk-bench"})
        repo, diff = make_repo(root)
        delay = args.model_delay

        def prompt(body):
            return "\n".join(str(m.get("content")) for m in body.get("messages", []))

        def claude_script(body):
            text = prompt(body)
            if "ROLE: planner" in text:
                return Reply(text=json.dumps(PLAN), delay_s=delay)
            if "ROLE: reviewer" in text:
                return Reply(text=json.dumps({"verdict": "approve", "findings": []}), delay_s=delay)
            return None

        with FakeAnthropic() as claude, FakeOpenAI() as oai:
            claude.respond(claude_script)
            oai.respond(lambda body: Reply(text=diff, delay_s=delay) if "ROLE: executor" in prompt(body) else None)
            cfg = write_config(
                home, workers={"planner": 1}, affinity={"planner": ["workflow"]},
                models={"chain": ["claude", "oai"], "max_wait_s": 0.0},
                providers={"claude": {"type": "claude", "base_url": claude.url, "model": "claude-sonnet-4-6",
                                      "min_spacing_ms": 0, "rpm": 0},
                           "oai": {"type": "openai_compatible", "base_url": oai.url, "model": "served-model",
                                   "min_spacing_ms": 0}},
                workflow={"planner": "claude", "executor": "oai", "reviewer": "claude", "test_command": TEST_COMMAND})
            store = open_store(cfg)
            sup = start_supervisor(home)
            try:
                wf = start(cfg, store, "Fix the off-by-one in pagination", str(repo), created_by="bench")
                task = wait_until(lambda: (lambda t: t if t and t.status == "WAITING_HUMAN" else None)(
                    store.get(store.get_workflow(wf["id"])["task_id"])), timeout=60, what="the approval question")
                approved_at = time.time()
                store.answer(task.id, {"choice": "approve"}, by="bench")
                final = wait_until(lambda: (lambda w: w if w["status"] != "RUNNING" else None)(
                    store.get_workflow(wf["id"])), timeout=120, step=0.01, what="the workflow to finish")
            finally:
                stop(sup)
            steps = store.workflow_steps(wf["id"])
            state = final["state"]
            store_rows = {s["step"]: store.usage_rows(task_id=s["task_id"]) for s in steps}
            store.close()

    if final["status"] != "DONE":
        print(f"the workflow ended {final['status']}: {final['error']}", file=sys.stderr)
        return 1
    gate_s = sum(r.get("seconds", 0.0) for g in state.get("gates", []) for r in g["results"])
    rows, prev = [], approved_at
    for s in steps:
        if s["phase"] == "plan":
            continue
        wall = s["finished_at"] - prev
        model = sum((u.get("latency_ms") or 0.0) for u in store_rows[s["step"]]) / 1000.0
        gates = gate_s if s["phase"] == "gates" else 0.0
        rows.append({"phase": s["phase"], "model_calls": s["model_calls"], "wall_s": wall, "model_s": model,
                     "gates_s": gates, "overhead_s": max(0.0, wall - model - gates)})
        prev = s["finished_at"]
    total = final["finished_at"] - approved_at
    overhead = sum(r["overhead_s"] for r in rows)
    print(f"workflow {final['id']}: approval to done {total:.3f} s (model delay {delay:g} s per call)")
    print(f"{'phase':<10}{'calls':>6}{'wall s':>10}{'model s':>10}{'gates s':>10}{'Fleet s':>10}")
    for r in rows:
        print(f"{r['phase']:<10}{r['model_calls']:>6}{r['wall_s']:>10.3f}{r['model_s']:>10.3f}{r['gates_s']:>10.3f}"
              f"{r['overhead_s']:>10.3f}")
    print(f"Fleet overhead: {overhead:.3f} s = {100 * overhead / total:.1f} % of the wall time (target <= 5 % "
          f"with 1 s model calls)")
    if args.json:
        print(json.dumps({"approval_to_done_s": total, "phases": rows, "overhead_s": overhead,
                          "overhead_pct": 100 * overhead / total}))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
