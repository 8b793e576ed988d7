"""memory_optimizer (fleet care, no model): audit reads real process RSS, the model
server's loaded models and store sizes; optimize unloads idle models on a loopback
Ollama and asks high-RSS workers to recycle; compact checkpoints and prunes old
knowledge; none of it touches a running task."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.db import open_store
from fleet.skills import memory_optimizer
from tests.fakes.model_servers import FakeOllama, dead_url

LOG = logging.getLogger("test.skills.care")


def care_config(home: Path, ollama_url: str, extra: str = "") -> dict:
    (home / "fleet.toml").write_text(
        f'[models]\nconductor_model = "qwen3:4b"\n[providers.ollama]\ntype = "ollama"\nbase_url = "{ollama_url}"\n'
        f'keep_alive = "10m"\n[skills.memory_optimizer]\nmodel_idle_s = 300.0\n{extra}')
    return load_config(home)


@pytest.fixture
def other_process():
    code = "import sys, time; b = b'x' * (30 * 1024 * 1024); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"  # its 30 MB are written before the audit looks
    yield proc
    proc.kill()
    proc.wait()


def test_audit_reports_worker_rss_models_and_store(isolated_home, other_process):
    with FakeOllama() as ollama:
        ollama.loaded = {"qwen3:4b": time.time() + 590, "llama3.2:1b": time.time() + 10}
        cfg = care_config(isolated_home, ollama.url)
        store = open_store(cfg)
        store.register_agent("coder_1", "coder", pid=other_process.pid, status="idle")
        store.register_agent("ghost", "researcher", pid=2 ** 22 - 3, status="idle")
        store.close()
        out = memory_optimizer.run({"action": "audit"}, cfg, LOG)
    workers = {w["name"]: w for w in out["workers"]}
    assert workers["coder_1"]["alive"] and workers["coder_1"]["rss_mb"] > 25
    assert workers["ghost"]["alive"] is False and workers["ghost"]["rss_mb"] is None
    models = {m["name"]: m for m in out["model_servers"][0]["models"]}
    assert models["qwen3:4b"]["kept"] and not models["qwen3:4b"]["idle"]  # the conductor model stays
    assert models["llama3.2:1b"]["idle"] and models["llama3.2:1b"]["idle_s"] >= 580
    assert out["storage"]["db_mb"] is not None and out["storage"]["db_path"] == cfg["paths"]["db"]


def test_optimize_unloads_idle_models_and_asks_big_workers_to_recycle(isolated_home, other_process):
    with FakeOllama() as ollama:
        ollama.loaded = {"qwen3:4b": time.time() + 590, "llama3.2:1b": time.time() + 10, "busy:7b": time.time() + 595}
        cfg = care_config(isolated_home, ollama.url)
        store = open_store(cfg)
        store.register_agent("coder_1", "coder", pid=other_process.pid, status="busy")
        task = store.enqueue("code_review", {"path": "x.py"})
        running = store.claim("coder_1", ["code_review"], lease_s=60)
        store.heartbeat("coder_1", current_task=running.id)
        dry = memory_optimizer.run({"action": "optimize", "dry_run": True, "rss_limit_mb": 10}, cfg, LOG)
        assert [u["model"] for u in dry["unloaded_models"]] == ["llama3.2:1b"] and "llama3.2:1b" in ollama.loaded
        assert store.inbox("coder_1") == []
        out = memory_optimizer.run({"action": "optimize", "rss_limit_mb": 10}, cfg, LOG)
        unload_calls = [r.body for r in ollama.requests_to("/api/generate")]
        inbox = store.inbox("coder_1", channel="agent")
        after = store.get(task.id)
        store.close()
    assert unload_calls == [{"model": "llama3.2:1b", "keep_alive": 0}]
    assert set(ollama.loaded) == {"qwen3:4b", "busy:7b"}
    assert [u["model"] for u in out["unloaded_models"]] == ["llama3.2:1b"]
    body = json.loads(inbox[0]["body"])
    assert body["type"] == "recycle" and body["when"] == "between_tasks"
    assert out["recycle_requested"][0]["busy_with_task"] == task.id
    assert after.status == "RUNNING" and after.lease_token == running.lease_token  # the running task is untouched


def test_optimize_without_model_server_still_reports(isolated_home):
    cfg = care_config(isolated_home, dead_url())
    out = memory_optimizer.run({"action": "audit"}, cfg, LOG)
    assert out["model_servers"][0]["reachable"] is False and "error" in out["model_servers"][0]
    assert memory_optimizer.run({"action": "optimize"}, cfg, LOG)["unloaded_models"] == []


def test_compact_checkpoints_and_prunes_by_retention(isolated_home):
    cfg = care_config(isolated_home, dead_url(), '[knowledge]\nretention_days = 30.0\nprune_dirs = ["code_reviews"]\n')
    k = Path(cfg["paths"]["knowledge"])
    old, new, other = k / "code_reviews" / "old_review.md", k / "code_reviews" / "new_review.md", k / "notes" / "old.md"
    for p in (old, new, other):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x" * 1000)
    stale = time.time() - 40 * 86400
    os.utime(old, (stale, stale))
    os.utime(other, (stale, stale))
    store = open_store(cfg)
    for i in range(200):
        store.enqueue("noop", {"i": i})
    store.close()
    dry = memory_optimizer.run({"action": "compact", "dry_run": True}, cfg, LOG)
    assert dry["pruned"]["removed"] == ["code_reviews/old_review.md"] and old.exists()
    out = memory_optimizer.run({"action": "compact"}, cfg, LOG)
    assert out["checkpoint"]["busy"] is False
    assert out["after"]["wal_mb"] == 0.0
    assert not old.exists() and new.exists() and other.exists()


def test_monitor_under_pressure_scales_down_idle_extras_and_unloads_idle_models(isolated_home):
    """A real fleet with an extra worker the load started, now idle, and a
    model server with an idle model: memory_optimizer monitor, run by a real
    worker under pressure (the available-RAM floor set above what any machine
    has), asks the supervisor to stop the idle extra (it does, by message,
    long before its idle timeout) and unloads the idle model; the role's own
    worker stays."""
    from tests.fakes.fleetproc import live_worker, start_supervisor, stop, wait_until, write_config

    with FakeOllama() as ollama:
        ollama.loaded = {"qwen3:4b": time.time() + 590, "llama3.2:1b": time.time() + 10}
        cfg = write_config(isolated_home, workers={"coder_count": 1, "archivist": 1},
                           affinity={"archivist": ["memory_optimizer"]},
                           supervisor={"scale_up_depth": 2, "scale_up_after_s": 0.0, "scale_max_extra": 1,
                                       "scale_idle_s": 600.0},
                           providers={"ollama": {"type": "ollama", "base_url": ollama.url}},
                           models={"conductor_model": "qwen3:4b"},
                           skills={"memory_optimizer": {"min_available_mb": 10 ** 9, "model_idle_s": 300.0}})
        sup = start_supervisor(isolated_home)
        store = open_store(cfg)
        try:
            wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
            load = [t.id for t in store.enqueue_many([{"skill": "sleepy", "payload": {"seconds": 0.2}}
                                                      for _ in range(12)])]
            wait_until(lambda: live_worker(store, "coder_extra1"), 30, what="an extra coder")
            wait_until(lambda: all(store.get(i).status == "DONE" for i in load), 60, what="the load done")
            wait_until(lambda: store.get_agent("coder_extra1")["status"] == "idle", 30, what="the extra idle")
            watch = store.enqueue("memory_optimizer", {"action": "monitor", "duration_s": 2, "interval_s": 0.5})
            done = wait_until(lambda: (t := store.get(watch.id)).status in ("DONE", "FAILED") and t, 60,
                              what="the monitor run")
            assert done.status == "DONE", done.error
            (action,) = done.result["actions"]  # one action: the cooldown (60 s) holds the rest back
            assert "available RAM" in action["why"] and action["unloaded_models"] == ["llama3.2:1b"]
            assert done.result["looks"] >= 3
            wait_until(lambda: store.get_agent("coder_extra1") is None, 30, what="the idle extra stopped")
            assert live_worker(store, "coder_1")  # the role's own worker stays
            assert "qwen3:4b" in ollama.loaded and "llama3.2:1b" not in ollama.loaded
            log = (isolated_home / "logs" / "archivist.log").read_text()
            assert "asked the supervisor to stop its idle extra workers" in log and "unloaded idle model" in log
        finally:
            store.close()
            assert stop(sup) == 0
