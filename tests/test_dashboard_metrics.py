"""/metrics on a real dashboard process: the classic text format's content
type, completed/failed counters by skill that never go backwards when
finished tasks are retried or their rows pruned, no duplicate of fleet_tasks,
and an exposition that `promtool check metrics` accepts."""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import subprocess

import httpx
import pytest

from fleet.db import open_store
from tests.conftest import require_system_part
from tests.fakes.dashboard_env import DashboardProcess, write_config


def _finish(store, skill: str, ok: bool) -> int:
    task = store.enqueue(skill, {}, max_attempts=1)
    c = store.claim("coder_1", [skill])
    if ok:
        store.complete(c.id, c.lease_token, {})
    else:
        store.fail(c.id, c.lease_token, "boom", retryable=False)
    return task.id


def _samples(text: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf'^{name}{{skill="([^"]+)"}} (\S+)$', text, re.MULTILINE)}


@pytest.fixture
def dash(isolated_home):
    cfg = write_config(isolated_home)
    store = open_store(cfg)
    with DashboardProcess(isolated_home) as d:
        yield d, store, cfg
    store.close()


def test_outcome_counters_never_go_backwards_and_the_format_is_0_0_4(dash):
    d, store, cfg = dash
    done = [_finish(store, "noop", True) for _ in range(3)]
    failed = _finish(store, "fails", False)
    resp = httpx.get(d.base + "/metrics", timeout=10)
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4"), resp.headers["content-type"]
    text = resp.text
    assert "fleet_tasks_by_status" not in text  # fleet_tasks{status,skill} already says it
    assert "# TYPE fleet_tasks_completed_total counter" in text or "# TYPE fleet_tasks_completed counter" in text
    assert _samples(text, "fleet_tasks_completed_total") == {"noop": 3.0, "fails": 0.0}
    assert _samples(text, "fleet_tasks_failed_total") == {"noop": 0.0, "fails": 1.0}

    store.retry(failed)  # the failure happened: a retry does not undo it
    with contextlib.closing(sqlite3.connect(cfg["paths"]["db"], isolation_level=None)) as db:  # history pruned
        ids = ", ".join(map(str, done[:2]))
        db.execute(f"DELETE FROM task_attempts WHERE task_id IN ({ids})")
        db.execute(f"DELETE FROM tasks WHERE id IN ({ids})")
    text = httpx.get(d.base + "/metrics", timeout=10).text
    assert 'fleet_tasks{skill="noop",status="DONE"} 1.0' in text  # the gauge follows the rows...
    assert _samples(text, "fleet_tasks_completed_total") == {"noop": 3.0, "fails": 0.0}  # ...the counter does not
    assert _samples(text, "fleet_tasks_failed_total") == {"noop": 0.0, "fails": 1.0}


def test_promtool_accepts_the_exposition(dash):
    promtool = shutil.which("promtool")
    require_system_part(promtool is not None, "promtool (Debian package 'prometheus')",
                        "apt-get install -y prometheus")
    d, store, _ = dash
    _finish(store, "noop", True)
    _finish(store, "fails", False)
    store.record_event("supervisor", "child_exit", agent="coder_1", detail={"exit_code": 1})
    store.raise_alert("warning", "test", "an alert")
    text = httpx.get(d.base + "/metrics", timeout=10).text
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
