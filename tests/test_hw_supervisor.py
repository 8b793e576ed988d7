"""The hardware supervisor's main loop as a real subprocess (anchor lesson 11):
on this machine's real NVML (GPU or not), with a scripted NVML that has no
driver, and with a scripted GPU that heats up, gets lost and comes back; plus
the fleet-started model server it keeps warm and stops; and the benchmark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import jsonschema
import pytest

from fleet.db import Store
from fleet.hw_state import JSON_SCHEMA
from tests.fakes.fleetproc import wait_until
from tests.fakes.model_servers import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs the real main() with `fleet.hardware.nvml.pynvml` replaced by the scripted fake.
WITH_FAKE_NVML = r"""
import json, os, sys
sys.path.insert(0, os.environ["REPO"])
import pynvml
import fleet.hardware.nvml as nvml_mod
from tests.fakes.fake_nvml import FakeGpu, FakeNvml
spec = json.loads(os.environ["FAKE_NVML"])
init_error = getattr(pynvml, spec["init_error"]) if spec.get("init_error") else None
gpus = [FakeGpu(uuid=f"GPU-fake-{i}", script_file=spec.get("script")) for i in range(spec.get("gpus", 0))]
nvml_mod.pynvml = FakeNvml(gpus, init_error=init_error)
from fleet.hw_supervisor import main
raise SystemExit(main(sys.argv[1:]))
"""


def read_state(home):
    try:
        with open(os.path.join(home, "hw_state.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, ValueError):
        return None


@pytest.fixture
def home(isolated_home):
    # keep the model-server care away from any real Ollama on this machine
    (isolated_home / "fleet.toml").write_text(
        f'[providers.ollama]\ntype = "ollama"\nbase_url = "http://127.0.0.1:{free_port()}"\n'
        '[model_server]\nprobe_timeout_s = 0.5\n')
    return isolated_home


def spawn(home, args, fake=None):
    env = dict(os.environ, FLEET_HOME=str(home), REPO=REPO, PYTHONPATH=REPO)
    if fake is None:
        cmd = [sys.executable, os.path.join(REPO, "fleet", "hw_supervisor.py"), *args]
    else:
        env["FAKE_NVML"] = json.dumps(fake)
        cmd = [sys.executable, "-c", WITH_FAKE_NVML, *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_runs_on_this_machines_real_nvml_and_stops_cleanly(home):
    proc = spawn(home, ["--interval", "0.5"])
    try:
        first = wait_until(lambda: read_state(home))
        assert first, "no hw_state.json written"
        later = wait_until(lambda: (s := read_state(home)) and s["written_at"] > first["written_at"] and s)
        assert later, "hw_state.json was not rewritten"
    finally:
        rc, out = stop(proc)
    assert rc == 0, out
    jsonschema.validate(later, JSON_SCHEMA)
    if later["gpus"]:  # a GPU machine: every GPU reported, a GPU tier or a stated reason
        assert later["source"] == "nvml" and all(g["uuid"] for g in later["gpus"])
    else:
        assert later["source"] == "cpu" and later["tier"]["name"] == "cpu"


def test_no_driver_means_cpu_tier_in_the_first_write(home):
    proc = spawn(home, ["--interval", "0.5"], fake={"init_error": "NVMLError_DriverNotLoaded"})
    try:
        state = wait_until(lambda: read_state(home))
    finally:
        rc, out = stop(proc)
    assert rc == 0, out
    assert state["gpus"] == [] and state["source"] == "cpu" and state["tier"]["name"] == "cpu"
    assert "DriverNotLoaded" in state["probe"]["nvml"]["error"]


def test_scripted_gpu_heats_up_gets_lost_and_comes_back(home):
    script = home / "gpu.json"
    script.write_text(json.dumps({"temp": 60}))
    config_before = (home / "fleet.toml").read_text()
    proc = spawn(home, ["--interval", "0.3"], fake={"gpus": 2, "script": str(script)})
    try:
        s = wait_until(lambda: (s := read_state(home)) and s["gpus"] and s)
        assert s["source"] == "nvml" and len(s["gpus"]) == 2 and s["tier"]["name"] == "large"
        script.write_text(json.dumps({"temp": 90}))
        s = wait_until(lambda: (s := read_state(home)) and s["tier"]["name"] == "medium" and s)
        assert s, "no thermal downgrade"
        assert s["thermal"]["state"] == "hot" and s["thermal"]["gpu_temp_c"] == 90
        assert "thermal" in s["tier"]["reason"]
        script.write_text(json.dumps({"temp": 60, "errors": {"nvmlDeviceGetTemperature": "NVMLError_GpuIsLost"}}))
        s = wait_until(lambda: (s := read_state(home)) and s["probe"]["nvml"]["state"] == "lost" and s)
        assert s and s["gpus"] == [] and s["tier"]["name"] == "cpu"
        script.write_text(json.dumps({"temp": 60}))
        s = wait_until(lambda: (s := read_state(home)) and s["gpus"] and s, timeout=30)
        assert s and s["probe"]["nvml"]["state"] == "ready" and s["probe"]["nvml"]["inits"] >= 2
    finally:
        rc, out = stop(proc)
    assert rc == 0, out
    store = Store(home / "fleet.db")
    try:
        alerts = store.list_alerts()
        assert {a["dedup_key"] for a in alerts} == {"hw:gpu_temp:GPU-fake-0", "hw:gpu_temp:GPU-fake-1"}
        moves = [e["detail"] for e in store.recent_events(200) if e["action"] == "tier_change"]
        moves = [m if isinstance(m, dict) else json.loads(m) for m in moves]
        assert {(m["from"], m["to"]) for m in moves} >= {(None, "large"), ("large", "medium"), ("medium", "cpu")}
    finally:
        store.close()
    assert (home / "fleet.toml").read_text() == config_before  # tier changes never touch fleet.toml


def test_a_second_instance_refuses_to_start(home):
    first = spawn(home, ["--interval", "0.5"], fake={"init_error": "NVMLError_LibraryNotFound"})
    try:
        assert wait_until(lambda: read_state(home))
        second = spawn(home, ["--once"])
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 75 and "already running" in out
        assert first.poll() is None
    finally:
        rc, out = stop(first)
    assert rc == 0, out


def test_module_entry_point_once(home):
    env = dict(os.environ, FLEET_HOME=str(home), PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "fleet.hw_supervisor", "--once"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    jsonschema.validate(read_state(home), JSON_SCHEMA)
    log = (home / "logs" / "hw_supervisor.log").read_text()
    assert "overhead: first poll took" in log


def test_an_unrunnable_model_server_command_is_an_alert_not_a_crash(home):
    # Found in review: FileNotFoundError ended the process before any write,
    # and the supervisor would restart it into the same crash for ever.
    with open(home / "fleet.toml", "a") as fh:
        fh.write('start_command = ["/nonexistent/ollama", "serve"]\n')
    env = dict(os.environ, FLEET_HOME=str(home), PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "fleet.hw_supervisor", "--once"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert read_state(home) is not None
    from fleet.config import load_config
    from fleet.db import open_store

    store = open_store(load_config(home))
    alerts = [a["message"] for a in store.list_alerts()]
    store.close()
    assert any("could not start the model server" in m and "/nonexistent/ollama" in m for m in alerts), alerts


def test_bad_tier_config_exits_78_with_a_message(home):
    (home / "fleet.toml").write_text('[models.tiers.cpu]\nmodel = "qwen3:4b"\nenabled = false\n')
    proc = spawn(home, ["--once"])
    out, _ = proc.communicate(timeout=60)
    rc = proc.returncode
    assert rc == 78 and "models.tiers.cpu" in out


def test_fleet_started_model_server_is_kept_warm_and_stopped_with_the_fleet(home):
    port = free_port()
    state_dir = home / "ollama_state"
    state_dir.mkdir()
    cmd = [sys.executable, os.path.join(REPO, "tests", "fakes", "ollama_hw.py"), "--port", str(port),
           "--state-dir", str(state_dir)]
    (home / "fleet.toml").write_text(
        f'[providers.ollama]\ntype = "ollama"\nbase_url = "http://127.0.0.1:{port}"\n'
        f'[model_server]\nstart_command = {json.dumps(cmd)}\n')
    proc = spawn(home, ["--interval", "0.3"], fake={"init_error": "NVMLError_LibraryNotFound"})
    try:
        s = wait_until(lambda: (s := read_state(home)) and s["models"]["tier_model_loaded"] and s)
        assert s, "the tier model was never loaded"
        assert s["models"]["server_managed"] is True and s["tier"]["model"] == "qwen3:4b"
        assert [m["name"] for m in s["models"]["loaded"]][:1] == ["qwen3:4b"]
        server_pid = s["models"]["server_pid"]
        assert server_pid and os.path.exists(home / "model_server.pid")
    finally:
        rc, out = stop(proc)
    assert rc == 0, out
    import psutil
    assert wait_until(lambda: not psutil.pid_exists(server_pid) or
                      psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE, timeout=15)


def test_bench_script_quick(home):
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench_hw.py"), "--quick",
                        "--window", "2", "--interval", "1", "--polls", "3"],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "poll cost" in r.stdout and "% of one core" in r.stdout
