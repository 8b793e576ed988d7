"""`lead_client smoke`: "did my install work?" in under 30 s.

A fast end-to-end self-test in a throw-away fleet home: it starts a real
supervisor there (one coder worker, the dashboard on a free loopback port and
the hardware supervisor), dispatches two skills that need no model
(code_index and code_quality on a small Python file), checks their results
and the files they write, checks the dashboard answers and the hardware state
is fresh, then stops the fleet and checks it stopped cleanly. Each step prints
PASS or FAIL with its time; the exit is 0 when all pass, else 1. The user's
own fleet is never touched. The home is removed afterwards, unless a step
failed (it is kept, and named, for its logs) or `--keep` is given.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import EXIT_FAILED, EXIT_OK, Ctx, print_json

REPO = Path(__file__).resolve().parents[2]
SAMPLE = '''"""A tiny module for the smoke test."""


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Counter:
    """Counts."""

    def bump(self, by: int = 1) -> int:
        self.n = getattr(self, "n", 0) + by
        return self.n
'''


class StepFailed(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _config(port: int) -> str:
    import tomlkit

    roles = {"coder_count": 1, "researcher": 0, "archivist": 0, "analyst": 0, "security": 0, "planner": 0}
    return tomlkit.dumps({
        "fleet": {"name": "smoke"},
        "workers": roles,
        "supervisor": {"services": ["dashboard", "hw_supervisor"], "heartbeat_interval_s": 0.5,
                       "status_interval_s": 1.0},
        "dashboard": {"port": port},
        "hardware": {"interval_s": 1.0},
        "models": {"chain": []},
    })


class Smoke:
    """The steps, in order, against one throw-away home."""

    def __init__(self, home: Path, echo: bool):
        self.home = home
        self.echo = echo
        self.port = _free_port()
        self.steps: list[dict] = []
        self.sup: subprocess.Popen | None = None
        self.store = None
        self.cfg: dict = {}

    def step(self, name: str, fn) -> bool:
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            ok, why = True, detail
        except StepFailed as exc:
            ok, why = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a smoke test reports any failure as the step's
            ok, why = False, f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - t0
        self.steps.append({"step": name, "ok": ok, "seconds": round(took, 2), "detail": why})
        if self.echo:
            print(f"{'PASS' if ok else 'FAIL'}  {name} ({took:.1f} s){': ' + why if why else ''}", flush=True)
        return ok

    # -- the steps ---------------------------------------------------------
    def write_home(self) -> str:
        (self.home / "fleet.toml").write_text(_config(self.port))
        (self.home / "sample").mkdir()
        (self.home / "sample" / "tiny.py").write_text(SAMPLE)
        from fleet.config import ConfigError, load_config

        try:
            self.cfg = load_config(self.home)
        except ConfigError as exc:
            raise StepFailed(f"the smoke fleet's own config is refused: {exc}") from None
        return str(self.home)

    def start_fleet(self) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        env.update(FLEET_HOME=str(self.home), PYTHONPATH=str(REPO))
        self.sup = subprocess.Popen([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--quiet"],
                                    cwd=str(self.home), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        from fleet.db import open_store

        self.store = open_store(self.cfg)

        def worker_idle():
            if self.sup.poll() is not None:
                raise StepFailed(f"the supervisor exited with {self.sup.returncode}: "
                                 f"{self.sup.stderr.read()[-500:].strip()}")
            a = self.store.get_agent("coder_1")
            return a is not None and a["status"] == "idle"

        _wait(worker_idle, 20, "the coder worker to start")
        return f"supervisor pid {self.sup.pid}, worker coder_1 idle"

    def run_skills(self) -> str:
        ids = {skill: self.store.enqueue(skill, {"path": "sample"}).id for skill in ("code_index", "code_quality")}

        def finished():
            tasks = {s: self.store.get(i) for s, i in ids.items()}
            return tasks if all(t.status in ("DONE", "FAILED", "CANCELLED") for t in tasks.values()) else None

        tasks = _wait(finished, 20, "code_index and code_quality to finish")
        bad = {s: f"{t.status}: {(t.error or '').strip()[:200]}" for s, t in tasks.items() if t.status != "DONE"}
        if bad:
            raise StepFailed("; ".join(f"{s} {why}" for s, why in bad.items()))
        index = Path(self.cfg["paths"]["knowledge"]) / "code_index.jsonl"
        rows = [json.loads(line) for line in index.read_text().splitlines() if line.strip()] if index.exists() else []
        if not any("add" in json.dumps(r) for r in rows):
            raise StepFailed(f"code_index wrote no entry for the sample's function `add` in {index}")
        reviews = list((Path(self.cfg["paths"]["knowledge"]) / "quality" / "reviews").glob("*.md"))
        if not reviews:
            raise StepFailed("code_quality wrote no report under knowledge/quality/reviews/")
        return f"tasks {ids['code_index']} and {ids['code_quality']} done; {index.name} and {reviews[0].name} written"

    def check_dashboard(self) -> str:
        import httpx

        base = f"http://127.0.0.1:{self.port}"

        def answers():
            try:
                r = httpx.get(base + "/api/status", timeout=2)
            except httpx.HTTPError:
                return None
            return r if r.status_code == 200 else None

        r = _wait(answers, 20, f"the dashboard at {base}")
        doc = r.json()
        if doc["counts"].get("DONE", 0) < 2:
            raise StepFailed(f"the dashboard counts {doc['counts'].get('DONE', 0)} done tasks, expected 2")
        return f"{base}/ answers; it counts the 2 done tasks"

    def check_hardware(self) -> str:
        from fleet.hw_state import read_hw_state

        def fresh():
            doc = read_hw_state(self.cfg)
            return None if doc["stale"] else doc

        doc = _wait(fresh, 20, "a fresh hw_state.json from the hardware supervisor")
        return f"hw_state.json fresh; model tier {(doc.get('tier') or {}).get('name')}, source {doc.get('source')}"

    def stop_fleet(self) -> str:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.sup.send_signal(signal.SIGTERM)
        try:
            rc = self.sup.wait(20)
        except subprocess.TimeoutExpired:
            self.sup.kill()
            raise StepFailed("the supervisor did not stop within 20 s of SIGTERM") from None
        if rc != 0:
            raise StepFailed(f"the supervisor exited with {rc}: {self.sup.stderr.read()[-500:].strip()}")
        return "stopped cleanly (exit 0)"

    def abort(self) -> None:
        """After a failed step: stop whatever still runs."""
        if self.store is not None:
            self.store.close()
        if self.sup is not None and self.sup.poll() is None:
            self.sup.send_signal(signal.SIGTERM)
            try:
                self.sup.wait(20)
            except subprocess.TimeoutExpired:
                self.sup.kill()


def cmd_smoke(ctx: Ctx) -> int:
    home = Path(tempfile.mkdtemp(prefix="fleet-smoke-"))
    smoke = Smoke(home, echo=not ctx.json)
    t0 = time.monotonic()
    steps = [("write a throw-away fleet home", smoke.write_home), ("start the fleet", smoke.start_fleet),
             ("run two skills that need no model", smoke.run_skills),
             ("dashboard answers", smoke.check_dashboard), ("hardware state is fresh", smoke.check_hardware),
             ("stop the fleet", smoke.stop_fleet)]
    ok = all(smoke.step(name, fn) for name, fn in steps)  # stops at the first failure
    if not ok:
        smoke.abort()
    took = time.monotonic() - t0
    kept = not ok or ctx.args.keep
    if not kept:
        shutil.rmtree(home, ignore_errors=True)
    if ctx.json:
        print_json({"ok": ok, "seconds": round(took, 1), "steps": smoke.steps, "home": str(home) if kept else None})
    else:
        print(f"smoke test {'passed' if ok else 'FAILED'} in {took:.1f} s"
              + (f"; its fleet home (logs/) is kept at {home}" if kept else ""))
    return EXIT_OK if ok else EXIT_FAILED


def register(sub, json_parent) -> None:
    p = sub.add_parser("smoke", parents=[json_parent],
                       help="end-to-end self-test in a throw-away home: start, two skills, dashboard, stop")
    p.add_argument("--keep", action="store_true", help="keep the throw-away fleet home afterwards")
    p.set_defaults(func=cmd_smoke)
