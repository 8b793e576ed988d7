"""NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`): every device, each field
read in its own try (NotSupported -> null, the rest still reported). No library
or driver -> no GPUs (CPU-only), never a crash; GpuIsLost / Unknown / lost
initialisation -> shut down and re-initialise with backoff up to 60 s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

try:
    import pynvml
except ImportError:  # nvidia-ml-py not installed: CPU-only
    pynvml = None

log = logging.getLogger("fleet.hardware.nvml")
_MB = 1024 * 1024

# NVML clock-event ("throttle") reason bits; stable across NVML versions.
THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
THERMAL_THROTTLE_REASONS = frozenset({"sw_thermal_slowdown", "hw_thermal_slowdown"})

# Errors after which the library state cannot be trusted: shut down, re-init later.
_REINIT_ERRORS = ("NVMLError_GpuIsLost", "NVMLError_Unknown", "NVMLError_Uninitialized",
                  "NVMLError_DriverNotLoaded", "NVMLError_LibRmVersionMismatch", "NVMLError_ResetRequired",
                  "NVMLError_GpuNotFound")


class _NeedsReinit(Exception):
    pass


def throttle_names(mask: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


class NvmlProbe:
    """One NVML session per process. `read()` returns one dict per GPU (the
    hw_state `gpus[]` shape) or [] when NVML is absent or recovering.
    `lib` defaults to the real `pynvml` module; `clock` drives the backoff."""

    def __init__(self, lib: Any = None, *, clock: Callable[[], float] = time.monotonic,
                 first_backoff_s: float = 1.0, max_backoff_s: float = 60.0):
        self.lib = lib
        self.clock = clock
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.backoff_s = first_backoff_s
        self.state = "uninit"  # uninit | ready | absent | lost
        self.next_try = 0.0
        self.handles: list = []
        self.last_error: str | None = None
        self.init_count = 0

    # -- lifecycle ---------------------------------------------------------
    def _lib(self):
        return self.lib if self.lib is not None else pynvml

    def status(self) -> dict:
        return {"state": self.state, "error": self.last_error, "inits": self.init_count}

    def _schedule_retry(self, state: str, error: str) -> None:
        if state != self.state or error != self.last_error:
            # no NVIDIA driver is normal on many machines; a lost GPU is not
            level = logging.INFO if state == "absent" else logging.WARNING
            log.log(level, "NVML %s: %s; retrying in %.0f s (CPU-only meanwhile)", state, error, self.backoff_s)
        self.state, self.last_error = state, error
        self.next_try = self.clock() + self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, self.max_backoff_s)

    def _init(self) -> bool:
        lib = self._lib()
        if lib is None:
            self.state, self.last_error = "absent", "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            self.next_try = float("inf")
            return False
        try:
            lib.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - LibraryNotFound, DriverNotLoaded, anything: never crash
            self._schedule_retry("absent", f"{type(exc).__name__}: {exc}")
            return False
        try:
            count = int(lib.nvmlDeviceGetCount())
            handles = [lib.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # noqa: BLE001 - any NVML failure here means: re-initialise later
            self._shutdown()
            self._schedule_retry("lost", f"{type(exc).__name__}: {exc}")
            return False
        self.handles = handles
        self.init_count += 1
        if self.state != "ready":
            log.info("NVML initialised: %d GPU(s)", count)
        self.state, self.last_error = "ready", None
        return True

    def _shutdown(self) -> None:
        lib = self._lib()
        self.handles = []
        if lib is None:
            return
        try:
            lib.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001 - already gone; nothing to release
            log.debug("nvmlShutdown: %s", exc)

    def close(self) -> None:
        if self.state == "ready":
            self._shutdown()
        self.state = "uninit"

    # -- reading -------------------------------------------------------------
    def read(self) -> list[dict]:
        if self.state != "ready" and (self.clock() < self.next_try or not self._init()):
            return []
        gpus = []
        try:
            for index, handle in enumerate(self.handles):
                gpus.append(self._read_device(index, handle))
        except _NeedsReinit as exc:
            self._shutdown()
            self._schedule_retry("lost", str(exc))
            return []
        self.backoff_s = self.first_backoff_s
        return gpus

    def _field(self, fn_name: str, *args):
        """One NVML call; unsupported/unavailable -> None, library-level failure -> re-init."""
        lib = self._lib()
        fn = getattr(lib, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception as exc:
            if type(exc).__name__ in _REINIT_ERRORS:
                raise _NeedsReinit(f"{fn_name}: {type(exc).__name__}: {exc}") from exc
            return None  # NotSupported, NoPermission, NotFound, ...: this field is null

    def _read_device(self, index: int, h) -> dict:
        lib = self._lib()
        name = self._field("nvmlDeviceGetName", h)
        uuid = self._field("nvmlDeviceGetUUID", h)
        mem = self._field("nvmlDeviceGetMemoryInfo", h)
        temp = self._field("nvmlDeviceGetTemperature", h, getattr(lib, "NVML_TEMPERATURE_GPU", 0))
        slowdown = self._field("nvmlDeviceGetTemperatureThreshold", h,
                               getattr(lib, "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1))
        power = self._field("nvmlDeviceGetPowerUsage", h)
        limit = self._field("nvmlDeviceGetEnforcedPowerLimit", h)
        util = self._field("nvmlDeviceGetUtilizationRates", h)
        mask = self._field("nvmlDeviceGetCurrentClocksThrottleReasons", h)
        total = _attr_mb(mem, "total")
        used = _attr_mb(mem, "used")
        free = _attr_mb(mem, "free")
        return {
            "index": index,
            "uuid": _text(uuid),
            "name": _text(name),
            "vram_total_mb": total,
            "vram_used_mb": used,
            "vram_free_mb": free,
            "temp_c": _num(temp),
            "slowdown_c": _num(slowdown),
            "power_w": round(power / 1000.0, 1) if isinstance(power, (int, float)) else None,
            "power_limit_w": round(limit / 1000.0, 1) if isinstance(limit, (int, float)) else None,
            "util_pct": _num(getattr(util, "gpu", None)),
            "throttle_reasons": throttle_names(int(mask)) if isinstance(mask, int) else None,
            "estimated": False,
        }


def _text(v) -> str | None:
    if v is None:
        return None
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _attr_mb(obj, attr: str) -> float | None:
    v = getattr(obj, attr, None)
    return round(v / _MB, 1) if isinstance(v, (int, float)) else None
