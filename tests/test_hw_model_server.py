"""Model-server care against loopback Ollama-compatible servers: loaded-model
listing, keep-alive loads, the conductor check, and the repair of a server the
fleet started whose port answers but whose API fails; a server the fleet did
not start is never signalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil

from fleet.hardware.model_server import (
    ManagedServer,
    ModelServerCare,
    conductor_model,
    server_url,
)
from tests.fakes.fleetproc import wait_until
from tests.fakes.model_servers import FakeOllama, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE = os.path.join(REPO, "tests", "fakes", "ollama_hw.py")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_url_and_conductor_come_from_the_routing_config():
    from fleet.config import validate

    # validate(): the loader's checks and defaults, without a file
    cfg = validate({"providers": {"ollama": {"type": "ollama", "base_url": "http://gpu-box:11434/"},
                                  "claude": {"type": "claude", "base_url": "https://api.anthropic.com"}},
                    "models": {"conductor_model": "qwen3:4b", "conductor_provider": "ollama"},
                    "model_server": {"url": "http://127.0.0.1:1"}})
    assert server_url(cfg) == "http://gpu-box:11434" and conductor_model(cfg) == "qwen3:4b"
    cfg["models"]["conductor_provider"] = "claude"
    assert conductor_model(cfg) is None
    no_url = validate({"providers": {"ollama": {"base_url": ""}}, "model_server": {"url": "http://127.0.0.1:9"}})
    assert server_url(no_url) == "http://127.0.0.1:9"


def test_lists_loaded_models_and_keeps_the_tier_model_warm():
    clock = Clock()
    with FakeOllama() as ollama:
        ollama.loaded["qwen3:8b"] = 0.0
        care = ModelServerCare(ollama.url, keepalive_interval_s=240, conductor_interval_s=60, clock=clock)
        try:
            out = care.tick("qwen3:4b", 0, conductor="qwen3:8b")
            assert out["server_reachable"] is True
            assert [m["name"] for m in out["loaded"]] == ["qwen3:8b"]
            assert out["loaded"][0]["vram_mb"] == round(ollama.size_vram / 1024 / 1024, 1)
            assert out["held_vram_mb"] == out["loaded"][0]["vram_mb"]
            assert out["conductor_loaded"] is True and out["tier_model_loaded"] is False
            # the tier model was not loaded: a keep-alive load was sent with the tier's num_gpu
            assert ollama.wait_for_requests(1, path="/api/generate")
            assert wait_until(lambda: care._ping_thread is None or not care._ping_thread.is_alive())
            loads = [r.body for r in ollama.requests_to("/api/generate")]
            assert {b["model"] for b in loads} == {"qwen3:4b", "qwen3:8b"}
            tier_load = next(b for b in loads if b["model"] == "qwen3:4b")
            assert tier_load["keep_alive"] == "30m" and tier_load["options"] == {"num_gpu": 0}
            conductor_load = next(b for b in loads if b["model"] == "qwen3:8b")
            assert conductor_load["options"] == {"num_gpu": 0}  # CPU tier: the conductor stays off the GPU
            assert tier_load.get("prompt", "") == ""  # a load, not a generation
            out = care.tick("qwen3:4b", 0, conductor="qwen3:8b")
            assert out["tier_model_loaded"] is True and out["last_keepalive_at"] is not None
            # within the keep-alive interval nothing more is sent; after it, one ping each
            def pings_done():  # keep-alive pings go out on a background thread
                return wait_until(lambda: care._ping_thread is None or not care._ping_thread.is_alive())

            clock.t += 100
            care.tick("qwen3:4b", 0, conductor="qwen3:8b")
            assert pings_done() and len(ollama.requests_to("/api/generate")) == 2
            clock.t += 200
            care.tick("qwen3:4b", 0, conductor="qwen3:8b")
            assert ollama.wait_for_requests(4, path="/api/generate") and pings_done()
            assert len(ollama.requests_to("/api/generate")) == 4  # one ping each, no duplicates
        finally:
            care.close()


def test_unreachable_server_is_reported_not_fatal():
    care = ModelServerCare(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    try:
        out = care.tick("qwen3:4b")
        assert out["server_reachable"] is False and out["loaded"] == [] and out["error"]
    finally:
        care.close()


def _fake_cmd(port, state_dir, *extra):
    return [sys.executable, FAKE, "--port", str(port), "--state-dir", str(state_dir), *extra]


def _starts(state_dir):
    try:
        with open(os.path.join(state_dir, "starts")) as fh:
            return [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        return []


def test_port_bound_but_unhealthy_fleet_started_server_is_restarted(tmp_path):
    port = free_port()
    state = tmp_path / "ollama"
    state.mkdir()
    events = []
    managed = ManagedServer(_fake_cmd(port, state), str(tmp_path / "model_server.pid"), stop_timeout_s=5)
    care = ModelServerCare(f"http://127.0.0.1:{port}", managed=managed, unhealthy_probes=3,
                           restart_min_interval_s=0, timeout_s=2, on_event=lambda a, d: events.append((a, d)))
    try:
        first = managed.start()
        assert wait_until(lambda: care.tick(None)["server_reachable"])
        (state / "unhealthy").touch()
        for i in range(2):
            out = care.tick(None)
            assert out["server_reachable"] is False and out["consecutive_failures"] == i + 1
        assert psutil.pid_exists(first) and events == []
        care.tick(None)  # third failed probe in a row: repair
        assert [a for a, _ in events] == ["model_server_repair"]
        detail = events[0][1]
        assert detail["old_pid"] == first and detail["new_pid"] != first and detail["stopped"] == "terminated"
        assert detail["failures"] == 3 and "500" in detail["error"]
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
        assert wait_until(lambda: care.tick(None)["server_reachable"])
        assert _starts(state) == [first, detail["new_pid"]]
        with open(tmp_path / "model_server.pid") as fh:
            assert json.load(fh)["pid"] == detail["new_pid"]
    finally:
        managed.stop()
        care.close()


def test_server_ignoring_term_is_killed_on_restart(tmp_path):
    port = free_port()
    state = tmp_path / "ollama"
    state.mkdir()
    managed = ManagedServer(_fake_cmd(port, state, "--ignore-term"), str(tmp_path / "ms.pid"), stop_timeout_s=1)
    try:
        managed.start()
        assert wait_until(lambda: len(_starts(state)) == 1)
        result = managed.restart()
        assert result["stopped"] == "killed" and result["new_pid"] != result["old_pid"]
        assert wait_until(lambda: len(_starts(state)) == 2)
    finally:
        managed.stop()


def test_server_the_fleet_did_not_start_is_never_killed(tmp_path):
    port = free_port()
    state = tmp_path / "ollama"
    state.mkdir()
    foreign = subprocess.Popen(_fake_cmd(port, state))
    alerts, events = [], []
    # configured with a start command, but this server was not started by the fleet
    managed = ManagedServer(_fake_cmd(port, state), str(tmp_path / "ms.pid"))
    care = ModelServerCare(f"http://127.0.0.1:{port}", managed=managed, restart_min_interval_s=0,
                           on_event=lambda a, d: events.append(a),
                           on_alert=lambda sev, key, msg: alerts.append((key, msg)))
    try:
        assert wait_until(lambda: care.tick(None)["server_reachable"])
        (state / "unhealthy").touch()
        for _ in range(6):
            care.tick(None)
        assert foreign.poll() is None, "a server the fleet did not start was stopped"
        assert events == [] and _starts(state) == [foreign.pid]
        assert alerts and "did not start it" in alerts[0][1]
    finally:
        foreign.terminate()
        foreign.wait(timeout=10)
        care.close()


def test_a_recycled_pid_is_not_adopted(tmp_path):
    pid_file = tmp_path / "ms.pid"
    pid_file.write_text(json.dumps({"pid": os.getpid(), "create_time": 12345.0, "command": ["x"]}))
    managed = ManagedServer(["x"], str(pid_file))
    assert managed.pid is None and not managed.running()
    me = psutil.Process()
    pid_file.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time(), "command": ["x"]}))
    assert ManagedServer(["x"], str(pid_file)).running()


def test_a_dead_fleet_started_server_is_started_again(tmp_path):
    port = free_port()
    state = tmp_path / "ollama"
    state.mkdir()
    events = []
    managed = ManagedServer(_fake_cmd(port, state), str(tmp_path / "ms.pid"), stop_timeout_s=5)
    care = ModelServerCare(f"http://127.0.0.1:{port}", managed=managed, restart_min_interval_s=0,
                           timeout_s=1, on_event=lambda a, d: events.append(a))
    try:
        first = managed.start()
        assert wait_until(lambda: care.tick(None)["server_reachable"])
        psutil.Process(first).kill()
        managed.proc.wait(timeout=10)
        assert wait_until(lambda: (care.tick(None), "model_server_start" in events)[1], timeout=20)
        assert wait_until(lambda: care.tick(None)["server_reachable"])
    finally:
        managed.stop()
        care.close()


def test_unload_asks_for_keep_alive_zero():
    with FakeOllama() as ollama:
        ollama.loaded["qwen3:8b"] = 0.0
        care = ModelServerCare(ollama.url)
        try:
            care.unload("qwen3:8b").join(timeout=10)
            body = ollama.requests_to("/api/generate")[-1].body
            assert body["model"] == "qwen3:8b" and body["keep_alive"] == 0
            assert care.tick(None)["loaded"] == []
        finally:
            care.close()
