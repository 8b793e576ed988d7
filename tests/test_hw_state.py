"""hw_state.json: atomic writes under a concurrent reader process, the reader's
staleness rule, the schema, history in the store, and the GPU-temperature
alert fired from a real file written by the hardware supervisor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jsonschema
import pytest

from fleet.config import load_config
from fleet.db import Store
from fleet.hardware import GpuProbe
from fleet.hardware.nvml import NvmlProbe
from fleet.hw_state import (
    JSON_SCHEMA,
    read_hw_state,
    temperature_alerts,
    write_hw_state,
)
from fleet.hw_supervisor import HwSupervisor
from tests.fakes.fake_nvml import FakeGpu, FakeNvml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cfg(isolated_home):
    c = load_config(isolated_home)
    c["model_server"]["enabled"] = False
    return c


def supervisor(cfg, store, gpus, **kw):
    probe = GpuProbe(nvml=NvmlProbe(lib=FakeNvml(gpus)), amd_root="/nonexistent", platform="linux")
    return HwSupervisor(cfg, store=store, gpu_probe=probe, **kw)


WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from fleet.hw_state import write_hw_state
path, until = sys.argv[2], time.time() + float(sys.argv[3])
n = 0
while time.time() < until:
    n += 1
    # sizes vary a lot, so a torn read would be visible as bad JSON
    write_hw_state(path, {"schema_version": 1, "written_at": time.time(), "interval_s": 5, "n": n,
                          "pad": "x" * (n % 7) * 20000})
print(n)
"""


def test_reader_never_sees_partial_json_while_writer_runs(tmp_path):
    (tmp_path / "w").mkdir()
    path = str(tmp_path / "w" / "hw_state.json")
    write_hw_state(path, {"schema_version": 1, "n": 0})
    writer = subprocess.Popen([sys.executable, "-c", WRITER, REPO, path, "3"], stdout=subprocess.PIPE, text=True)
    reads, bad, seen = 0, [], set()
    try:
        while writer.poll() is None:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            try:
                seen.add(json.loads(text)["n"])
            except ValueError as exc:
                bad.append((len(text), str(exc)))
            reads += 1
    finally:
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0
    assert not bad, bad[:3]
    assert int(out) > 10 and len(seen) > 5 and reads > 10
    leftovers = [n for n in os.listdir(tmp_path / "w") if n != "hw_state.json"]
    assert leftovers == []  # no temp files left behind


def test_reader_staleness_and_cpu_fallback(cfg):
    path = cfg["paths"]["hw_state"]
    missing = read_hw_state(cfg)
    assert missing["stale"] is True and missing["tier"]["name"] == "cpu" and "missing" in missing["tier"]["reason"]
    now = time.time()
    doc = {"schema_version": 1, "written_at": now, "interval_s": 5.0, "gpus": [],
           "tier": {"name": "large", "model": "qwen3:8b", "reason": "start", "changed_at": now}}
    write_hw_state(path, doc)
    fresh = read_hw_state(cfg, now=now + 14.0)
    assert fresh["stale"] is False and fresh["tier"]["name"] == "large"
    old = read_hw_state(cfg, now=now + 16.0)  # older than 3 x 5 s
    assert old["stale"] is True and old["tier"]["name"] == "cpu" and old["tier"]["model"] == "qwen3:4b"
    write_hw_state(path, dict(doc, schema_version=99))
    assert read_hw_state(cfg)["stale"] is True
    with open(path, "w") as fh:
        fh.write('{"schema_version": 1, "writ')
    broken = read_hw_state(cfg)
    assert broken["stale"] is True and broken["tier"]["name"] == "cpu" and "unreadable" in broken["stale_reason"]
    # Found in review: all of these were reported fresh, with the file's big tier.
    for odd in (dict(doc, written_at=now + 86400),      # the clock stepped back after the write
                dict(doc, interval_s=1e9, written_at=now - 86400),  # an implausible interval
                {k: v for k, v in doc.items() if k != "tier"}):     # no tier at all
        write_hw_state(path, odd)
        got = read_hw_state(cfg, now=now)
        assert got["stale"] is True and got["tier"]["name"] == "cpu", odd
    with open(path, "w") as fh:
        fh.write('{"schema_version": 1, "written_at": NaN, "interval_s": 5.0, "tier": {"name": "large"}}')
    assert read_hw_state(cfg, now=now)["stale"] is True


def test_written_file_matches_the_documented_schema(cfg, store):
    leftover = os.path.join(cfg["home"], ".hw_state.dead.tmp")  # a writer killed mid-write
    with open(leftover, "w") as fh:
        fh.write("{")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    sup = supervisor(cfg, store, [FakeGpu()])
    assert not os.path.exists(leftover)
    sup.poll_once()
    with open(cfg["paths"]["hw_state"]) as fh:
        doc = json.load(fh)
    jsonschema.validate(doc, JSON_SCHEMA)
    assert doc["source"] == "nvml" and doc["tier"]["name"] == "large" and doc["gpus"][0]["temp_c"] == 55
    sup = supervisor(cfg, store, [])
    sup.poll_once()
    with open(cfg["paths"]["hw_state"]) as fh:
        doc = json.load(fh)
    jsonschema.validate(doc, JSON_SCHEMA)
    assert doc["source"] == "cpu" and doc["gpus"] == [] and doc["tier"]["name"] == "cpu"


def test_gpu_temperature_alert_fires_from_a_real_file(cfg, store):
    sup = supervisor(cfg, store, [FakeGpu(temp=84, uuid="GPU-hot")])
    sup.poll_once()
    # the file on disk carries the keys the alert rule reads...
    state = read_hw_state(cfg)
    assert state["stale"] is False
    assert state["gpus"][0]["temp_c"] == 84 and state["thermal"]["gpu_max_sustained_c"] == 75
    from_file = temperature_alerts(state)
    assert [a["dedup_key"] for a in from_file] == ["hw:gpu_temp:GPU-hot"]
    # ...and the supervisor raised exactly that alert
    alerts = store.list_alerts()
    assert [a["dedup_key"] for a in alerts] == ["hw:gpu_temp:GPU-hot"]
    assert "84" in alerts[0]["message"] and "gpu_max_sustained_c" in alerts[0]["message"]
    sup.poll_once()  # repeats are rate-limited, not duplicated
    assert len(store.list_alerts()) == 1


def test_cool_gpu_raises_no_alert(cfg, store):
    supervisor(cfg, store, [FakeGpu(temp=70)]).poll_once()
    assert store.list_alerts() == []
    assert temperature_alerts(read_hw_state(cfg)) == []


def test_tier_changes_are_events_and_history_is_kept(cfg, store):
    cfg["hardware"]["history_interval_s"] = 5.0
    gpu = FakeGpu(temp=60)
    t = [0.0]
    sup = supervisor(cfg, store, [gpu], clock=lambda: t[0])
    for temp in (60, 60, 90, 90, 90):
        gpu.temp = temp
        t[0] += 5.0
        sup.poll_once()
    changes = [e for e in store.recent_events(50) if e["action"] == "tier_change"]
    details = [e["detail"] if isinstance(e["detail"], dict) else json.loads(e["detail"]) for e in changes]
    assert [(d["from"], d["to"]) for d in sorted(details, key=lambda d: d["from"] or "")] == \
        [(None, "large"), ("large", "medium")]
    assert any("thermal" in d["reason"] for d in details)
    samples = store.hw_samples()
    assert len(samples) >= 2 and max(s["gpu_temp_c"] for s in samples) == 90
    assert samples[-1]["tier"] == "medium" and samples[-1]["gpus"][0]["temp_c"] == 90


def test_eco_flag_and_training_lock_pin_cpu(cfg, store):
    store.register_agent("hw_supervisor", "hw_supervisor", pid=None, status="starting")
    sup = supervisor(cfg, store, [FakeGpu()])
    assert sup.poll_once()["tier"]["name"] == "large"
    assert store.get_agent("hw_supervisor")["detail"]["tier"] == "large"  # heartbeat for the supervisor's row
    assert store.acquire_lock("training", "trainer", 60)
    st = sup.poll_once()
    assert st["tier"]["name"] == "cpu" and st["training"]["holder"] == "trainer"
    store.release_lock("training", "trainer")
    assert sup.poll_once()["tier"]["name"] == "large"
    store.set_flag("eco_mode", True, by="test")
    st = sup.poll_once()
    assert st["tier"]["name"] == "cpu" and st["eco_mode"] is True
    # fleet.toml is never rewritten by the hardware supervisor
    assert not os.path.exists(os.path.join(cfg["home"], "fleet.toml"))


def test_hw_samples_retention(tmp_path):
    s = Store(tmp_path / "h.db")
    try:
        now = time.time()
        s.record_hw_sample({"cpu_pct": 1.0, "tier": "cpu"}, ts=now - 90000)
        s.record_hw_sample({"cpu_pct": 2.0, "gpu_temp_c": 70, "tier": "large", "gpus": [{"index": 0}]}, ts=now)
        rows = s.hw_samples()
        assert [r["cpu_pct"] for r in rows] == [2.0] and rows[0]["gpus"] == [{"index": 0}]
        from fleet.store import InvalidInput
        with pytest.raises(InvalidInput):
            s.record_hw_sample({"cpu_pct": "hot"})
        assert len(s.hw_samples()) == 1
    finally:
        s.close()


def test_overhead_is_logged_at_start_and_after_60_s(cfg, store, caplog):
    t = [0.0]
    sup = supervisor(cfg, store, [FakeGpu()], clock=lambda: t[0])
    caplog.set_level("INFO", logger="hw_supervisor")
    sup.poll_once()
    sup._overhead(1)
    assert "first poll took" in caplog.text
    for n in range(2, 14):
        t[0] += 5.0
        sup.poll_once()
        sup._overhead(n)
    assert sup.cpu_pct is not None and sup.cpu_pct >= 0
    assert "% of one core over 60 s" in caplog.text
    assert sup.poll_once()["overhead"]["cpu_pct"] == sup.cpu_pct


def test_stepping_down_unloads_the_bigger_model_but_never_the_conductor(cfg, store):
    from tests.fakes.model_servers import FakeOllama

    with FakeOllama() as ollama:
        cfg["model_server"]["enabled"] = True
        cfg["providers"]["ollama"]["base_url"] = ollama.url
        gpu = FakeGpu(used_mb=800)
        sup = supervisor(cfg, store, [gpu])
        try:
            assert sup.poll_once()["tier"]["model"] == "qwen3:8b"
            assert ollama.wait_for_requests(1, path="/api/generate")  # keep-alive load of the tier model
            assert wait_for(lambda: "qwen3:8b" in ollama.loaded)
            ollama.size_vram = 0  # what /api/ps reports as held: nothing, so the squeeze is real
            gpu.used_mb = 8000  # another program takes the VRAM: 4.2 GB free fits no GPU tier
            states = [sup.poll_once() for _ in range(2)]
            assert states[-1]["tier"]["name"] == "cpu"
            assert wait_for(lambda: any(r.body.get("model") == "qwen3:8b" and r.body.get("keep_alive") == 0
                                        for r in ollama.requests_to("/api/generate")))
            change = next(e for e in store.recent_events(20) if e["action"] == "tier_change"
                          and (e["detail"] or {}).get("to") == "cpu")
            assert change["detail"]["unloaded"] == "qwen3:8b"
            # the conductor (qwen3:4b) is never unloaded by a tier change
            assert not any(r.body.get("model") == "qwen3:4b" and r.body.get("keep_alive") == 0
                           for r in ollama.requests_to("/api/generate"))
        finally:
            sup.close()


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_a_poll_that_keeps_failing_ends_the_loop_so_the_supervisor_sees_it(cfg, store):
    import threading

    class Broken:
        nvml = NvmlProbe(lib=FakeNvml([]))
        calls = 0

        def read(self):
            Broken.calls += 1
            if Broken.calls == 1:
                return "cpu", []
            raise RuntimeError("probe bug")

        def close(self):
            pass

    sup = HwSupervisor(cfg, store=store, gpu_probe=Broken(), interval_s=0.01)
    with pytest.raises(RuntimeError, match="probe bug"):
        sup.run(threading.Event())
    assert Broken.calls == 6  # one good poll, then five failures in a row
    with open(cfg["paths"]["hw_state"]) as fh:  # the good poll's file is there, whole
        assert json.load(fh)["source"] == "cpu"
