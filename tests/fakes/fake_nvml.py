"""A scripted stand-in for the `pynvml` module (NVML), swapped in at the module
boundary (`fleet.hardware.nvml.pynvml`). It raises the REAL pynvml exception
classes, so the probe's error handling is tested against what NVML raises.

    fake = FakeNvml([FakeGpu(temp=60, used_mb=1000)])
    monkeypatch.setattr(fleet.hardware.nvml, "pynvml", fake)
    fake.gpus[0].errors["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_NotSupported
"""

from __future__ import annotations

import dataclasses
import json
import types
from typing import Any

import pynvml as real

_MB = 1024 * 1024


@dataclasses.dataclass
class FakeGpu:
    name: str = "NVIDIA GeForce RTX 4070"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    total_mb: float = 12288
    used_mb: float = 800
    temp: float = 55
    slowdown: float | None = 95
    power_mw: int = 120_000
    limit_mw: int = 200_000
    util: int = 10
    throttle_mask: int = 0
    # fn name -> a pynvml exception class (or instance) to raise from that call
    errors: dict = dataclasses.field(default_factory=dict)
    # optional JSON file {"temp": .., "used_mb": .., "throttle_mask": .., "errors": {fn: class name}}
    # re-read on every call, so another process can script the GPU
    script_file: str | None = None

    def value(self, key: str) -> Any:
        if self.script_file:
            try:
                with open(self.script_file, encoding="utf-8") as fh:
                    data = json.load(fh)
                if key in data:
                    return data[key]
            except (OSError, ValueError):
                pass
        return getattr(self, key)


class FakeNvml:
    """The subset of pynvml the probe calls, scripted per test."""

    NVML_TEMPERATURE_GPU = real.NVML_TEMPERATURE_GPU
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = real.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN

    def __init__(self, gpus: list[FakeGpu] | None = None, *, init_error=None):
        self.gpus = list(gpus or [])
        self.init_error = init_error
        self.init_calls = 0
        self.shutdown_calls = 0
        self.initialised = False
        self.calls: list[str] = []

    # -- library lifecycle --------------------------------------------------
    def nvmlInit(self):
        self.init_calls += 1
        if self.init_error is not None:
            raise _exc(self.init_error)
        self.initialised = True

    def nvmlShutdown(self):
        self.shutdown_calls += 1
        if not self.initialised:
            raise real.NVMLError_Uninitialized()
        self.initialised = False

    def nvmlDeviceGetCount(self):
        self._need_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        self._need_init()
        if not 0 <= i < len(self.gpus):
            raise real.NVMLError_InvalidArgument()
        return i

    # -- per-device getters ---------------------------------------------------
    def _need_init(self):
        if not self.initialised:
            raise real.NVMLError_Uninitialized()

    def _gpu(self, fn: str, h) -> FakeGpu:
        self.calls.append(fn)
        self._need_init()
        gpu = self.gpus[h]
        err = gpu.errors.get(fn) or _scripted_error(gpu, fn)
        if err is not None:
            raise _exc(err)
        return gpu

    def nvmlDeviceGetName(self, h):
        return self._gpu("nvmlDeviceGetName", h).name

    def nvmlDeviceGetUUID(self, h):
        return self._gpu("nvmlDeviceGetUUID", h).uuid

    def nvmlDeviceGetMemoryInfo(self, h):
        g = self._gpu("nvmlDeviceGetMemoryInfo", h)
        total, used = int(g.value("total_mb") * _MB), int(g.value("used_mb") * _MB)
        return types.SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetTemperature(self, h, sensor):
        assert sensor == real.NVML_TEMPERATURE_GPU
        return int(self._gpu("nvmlDeviceGetTemperature", h).value("temp"))

    def nvmlDeviceGetTemperatureThreshold(self, h, kind):
        assert kind == real.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
        g = self._gpu("nvmlDeviceGetTemperatureThreshold", h)
        if g.slowdown is None:
            raise real.NVMLError_NotSupported()
        return int(g.slowdown)

    def nvmlDeviceGetPowerUsage(self, h):
        return self._gpu("nvmlDeviceGetPowerUsage", h).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", h).limit_mw

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=self._gpu("nvmlDeviceGetUtilizationRates", h).util, memory=0)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return int(self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", h).value("throttle_mask"))


def _scripted_error(gpu: FakeGpu, fn: str):
    """From the script file: {"errors": {"nvmlDeviceGetTemperature": "NVMLError_GpuIsLost"}}."""
    names = gpu.value("errors") if gpu.script_file else None
    name = (names or {}).get(fn)
    return getattr(real, name) if name else None


def _exc(err):
    return err() if isinstance(err, type) else err
