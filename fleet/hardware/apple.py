"""Apple Silicon: no discrete VRAM, so the GPU's share of unified memory is
estimated (Metal's working-set limit is about 75 % of RAM) and flagged
`estimated: true`. Temperature and power are not readable without root."""

from __future__ import annotations

import platform as _platform
import sys

import psutil

GPU_SHARE = 0.75
_MB = 1024 * 1024


def read_gpus(*, platform: str | None = None, machine: str | None = None) -> list[dict]:
    plat = platform or sys.platform
    arch = machine or _platform.machine()
    if plat != "darwin" or arch not in ("arm64", "aarch64"):
        return []
    vm = psutil.virtual_memory()
    total = vm.total * GPU_SHARE
    used = max(0.0, min(total, vm.total - vm.available))
    return [{
        "index": 0, "uuid": None, "name": "Apple Silicon GPU (unified memory, estimated)",
        "vram_total_mb": round(total / _MB, 1), "vram_used_mb": round(used / _MB, 1),
        "vram_free_mb": round((total - used) / _MB, 1),
        "temp_c": None, "slowdown_c": None, "power_w": None, "power_limit_w": None,
        "util_pct": None, "throttle_reasons": None, "estimated": True,
    }]
