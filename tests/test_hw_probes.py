"""Hardware probes: NVML replaced at the module boundary by a scripted fake
raising the real pynvml exception classes; AMD sysfs on a fake tree; the
Apple estimate; the CPU probe on this machine."""

from __future__ import annotations

import os

import pynvml
import pytest

import fleet.hardware.nvml as nvml_mod
from fleet.hardware import GpuProbe
from fleet.hardware.amd import read_gpus as amd_read
from fleet.hardware.apple import read_gpus as apple_read
from fleet.hardware.cpu import CpuProbe
from fleet.hardware.nvml import NvmlProbe
from tests.fakes.fake_nvml import FakeGpu, FakeNvml


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def fake(monkeypatch):
    f = FakeNvml([FakeGpu(), FakeGpu(uuid="GPU-1", name="second", temp=40, used_mb=100)])
    monkeypatch.setattr(nvml_mod, "pynvml", f)
    return f


def test_every_gpu_is_read_with_all_fields(fake):
    gpus = NvmlProbe().read()
    assert [g["index"] for g in gpus] == [0, 1]
    g = gpus[0]
    assert g["name"] == "NVIDIA GeForce RTX 4070" and g["uuid"].startswith("GPU-")
    assert g["vram_total_mb"] == 12288 and g["vram_used_mb"] == 800 and g["vram_free_mb"] == 11488
    assert g["temp_c"] == 55 and g["slowdown_c"] == 95 and g["power_w"] == 120 and g["power_limit_w"] == 200
    assert g["util_pct"] == 10 and g["throttle_reasons"] == []
    assert gpus[1]["name"] == "second" and gpus[1]["temp_c"] == 40
    assert fake.init_calls == 1


@pytest.mark.parametrize("error", [pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded,
                                   pynvml.NVMLError_NoPermission])
def test_no_driver_means_cpu_only_at_once(monkeypatch, error):
    monkeypatch.setattr(nvml_mod, "pynvml", FakeNvml([FakeGpu()], init_error=error))
    probe = GpuProbe(nvml=NvmlProbe(), amd_root="/nonexistent", platform="linux")
    assert probe.read() == ("cpu", [])
    assert probe.nvml.state == "absent" and error.__name__ in probe.nvml.last_error


def test_no_pynvml_module_at_all(monkeypatch):
    monkeypatch.setattr(nvml_mod, "pynvml", None)
    probe = NvmlProbe()
    assert probe.read() == [] and "nvidia-ml-py" in probe.last_error


def test_not_supported_field_is_null_and_others_present(fake):
    fake.gpus[0].errors["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_NotSupported
    fake.gpus[0].errors["nvmlDeviceGetCurrentClocksThrottleReasons"] = pynvml.NVMLError_NotSupported
    fake.gpus[0].slowdown = None  # the fake raises NotSupported for the threshold too
    g = NvmlProbe().read()[0]
    assert g["power_w"] is None and g["throttle_reasons"] is None and g["slowdown_c"] is None
    assert g["temp_c"] == 55 and g["vram_free_mb"] == 11488 and g["power_limit_w"] == 200


def test_throttle_bits_are_named(fake):
    fake.gpus[0].throttle_mask = 0x20 | 0x4
    assert NvmlProbe().read()[0]["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]


def test_gpu_is_lost_reinitialises_with_backoff(fake):
    clock = Clock()
    probe = NvmlProbe(clock=clock, first_backoff_s=1.0, max_backoff_s=60.0)
    assert len(probe.read()) == 2
    fake.gpus[1].errors["nvmlDeviceGetTemperature"] = pynvml.NVMLError_GpuIsLost
    assert probe.read() == [] and probe.state == "lost" and "GpuIsLost" in probe.last_error
    assert fake.shutdown_calls == 1
    # still lost: each re-init attempt fails and the wait doubles, capped at 60 s
    fake.init_error = pynvml.NVMLError_Unknown
    waits = []
    for _ in range(10):
        before = fake.init_calls
        clock.t = probe.next_try - 0.01
        assert probe.read() == [] and fake.init_calls == before  # not yet
        clock.t = probe.next_try
        start = clock.t
        probe.read()
        assert fake.init_calls == before + 1
        waits.append(probe.next_try - start)
    assert waits[0] == 2 and waits[-1] == 60 and all(w <= 60 for w in waits)
    # the GPU comes back: re-initialised, both GPUs read again, backoff reset
    fake.init_error = None
    fake.gpus[1].errors.clear()
    clock.t = probe.next_try
    assert len(probe.read()) == 2 and probe.state == "ready" and probe.backoff_s == 1.0
    assert probe.init_count == 2


def test_unknown_error_in_a_field_reinitialises(fake):
    clock = Clock()
    probe = NvmlProbe(clock=clock)
    probe.read()
    fake.gpus[0].errors["nvmlDeviceGetMemoryInfo"] = pynvml.NVMLError_Unknown
    assert probe.read() == [] and probe.state == "lost"
    fake.gpus[0].errors.clear()
    clock.t += 1.0
    assert len(probe.read()) == 2


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def test_amd_sysfs(tmp_path):
    root = tmp_path / "drm"
    dev = root / "card1" / "device"
    _write(str(dev / "vendor"), "0x1002\n")
    _write(str(dev / "mem_info_vram_total"), str(16 * 1024**3))
    _write(str(dev / "mem_info_vram_used"), str(2 * 1024**3))
    _write(str(dev / "gpu_busy_percent"), "37")
    _write(str(dev / "hwmon" / "hwmon3" / "temp1_input"), "61000")
    _write(str(dev / "hwmon" / "hwmon3" / "temp1_crit"), "100000")
    _write(str(dev / "hwmon" / "hwmon3" / "power1_average"), "150000000")
    intel = root / "card0" / "device"
    _write(str(intel / "vendor"), "0x8086\n")
    (root / "card1-DP-1").mkdir()
    gpus = amd_read(str(root))
    assert len(gpus) == 1
    g = gpus[0]
    assert g["vram_total_mb"] == 16384 and g["vram_free_mb"] == 14336 and g["temp_c"] == 61
    assert g["slowdown_c"] == 95 and g["power_w"] == 150 and g["util_pct"] == 37 and g["power_limit_w"] is None
    probe = GpuProbe(nvml=NvmlProbe(lib=FakeNvml(init_error=pynvml.NVMLError_LibraryNotFound)),
                     amd_root=str(root), platform="linux")
    assert probe.read()[0] == "amd-sysfs"


def test_apple_estimate_is_flagged():
    assert apple_read(platform="linux", machine="x86_64") == []
    gpus = apple_read(platform="darwin", machine="arm64")
    assert len(gpus) == 1 and gpus[0]["estimated"] is True and gpus[0]["vram_total_mb"] > 0
    assert gpus[0]["temp_c"] is None


def test_cpu_probe_reads_this_machine(tmp_path):
    r = CpuProbe(str(tmp_path / "not" / "yet")).read()
    assert r["cpu"]["count"] >= 1 and 0 <= r["cpu"]["percent"] <= 100
    assert r["memory"]["total_mb"] > 0 and r["disk"]["free_mb"] > 0
