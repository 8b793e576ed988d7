"""`lead_client smoke`: the end-to-end self-test runs a real fleet in a
throw-away home and leaves nothing behind when it passes; a failing step says
which and why, stops the fleet it started, keeps the home for its logs, and
exits 1. The user's own fleet home is never touched."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fleet.cli import smoke
from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import pid_gone


def test_smoke_passes_every_step_and_removes_its_home(isolated_home):
    before = sorted(p.name for p in isolated_home.iterdir())
    r = cli(isolated_home, "smoke", "--json", timeout=120)
    doc = r.json()
    assert r.rc == 0 and doc["ok"] is True, (r.out, r.err)
    assert [s["step"] for s in doc["steps"]] == [
        "write a throw-away fleet home", "start the fleet", "run two skills that need no model",
        "dashboard answers", "hardware state is fresh", "stop the fleet"]
    assert all(s["ok"] for s in doc["steps"]) and doc["home"] is None
    home = Path(doc["steps"][0]["detail"])
    assert not home.exists()
    assert sorted(p.name for p in isolated_home.iterdir()) == before  # the user's fleet untouched
    plain = cli(isolated_home, "smoke", timeout=120)
    assert plain.rc == 0 and plain.out.count("PASS ") == 6 and "smoke test passed" in plain.out


def test_a_failing_step_stops_the_fleet_keeps_the_home_and_exits_1(monkeypatch, capsys):
    def broken(self):
        raise smoke.StepFailed("the dashboard said 503")

    monkeypatch.setattr(smoke.Smoke, "check_dashboard", broken)
    seen = {}
    real_start = smoke.Smoke.start_fleet

    def start_and_note(self):
        out = real_start(self)
        seen["pid"] = self.sup.pid
        return out

    monkeypatch.setattr(smoke.Smoke, "start_fleet", start_and_note)
    ctx = smoke.Ctx(argparse.Namespace(json=False, keep=False, home=None))
    assert smoke.cmd_smoke(ctx) == 1
    out = capsys.readouterr().out
    assert "FAIL  dashboard answers" in out and "the dashboard said 503" in out
    assert "hardware state is fresh" not in out  # it stops at the first failure
    kept = Path(out.split("is kept at ")[1].strip())
    assert kept.is_dir() and (kept / "logs").is_dir()
    assert pid_gone(seen["pid"])  # the fleet it started was stopped
    import shutil

    shutil.rmtree(kept)
    assert os.environ.get("FLEET_HOME") != str(kept)
