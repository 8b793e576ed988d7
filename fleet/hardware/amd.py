"""AMD GPUs through sysfs (amdgpu driver): VRAM, temperature, power and busy %
from /sys/class/drm/card*/device. Fields the driver does not expose are null."""

from __future__ import annotations

import glob
import os

SYSFS_DRM = "/sys/class/drm"
AMD_VENDOR = "0x1002"
_MB = 1024 * 1024


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_gpus(root: str = SYSFS_DRM) -> list[dict]:
    """One dict per amdgpu card (hw_state `gpus[]` shape); [] when none."""
    gpus = []
    for card in sorted(glob.glob(os.path.join(root, "card[0-9]*"))):
        if "-" in os.path.basename(card):  # connectors like card0-DP-1
            continue
        dev = os.path.join(card, "device")
        if _read(os.path.join(dev, "vendor")) != AMD_VENDOR:
            continue
        total = _int(os.path.join(dev, "mem_info_vram_total"))
        used = _int(os.path.join(dev, "mem_info_vram_used"))
        hwmons = sorted(glob.glob(os.path.join(dev, "hwmon", "hwmon*")))
        hw = hwmons[0] if hwmons else None
        temp = _int(os.path.join(hw, "temp1_input")) if hw else None
        crit = _int(os.path.join(hw, "temp1_crit")) if hw else None
        power = None
        if hw:
            power = _int(os.path.join(hw, "power1_average"))
            if power is None:
                power = _int(os.path.join(hw, "power1_input"))
        cap = _int(os.path.join(hw, "power1_cap")) if hw else None
        busy = _int(os.path.join(dev, "gpu_busy_percent"))
        gpus.append({
            "index": len(gpus),
            "uuid": _read(os.path.join(dev, "unique_id")),
            "name": _read(os.path.join(dev, "product_name")) or f"AMD GPU ({os.path.basename(card)})",
            "vram_total_mb": round(total / _MB, 1) if total is not None else None,
            "vram_used_mb": round(used / _MB, 1) if used is not None else None,
            "vram_free_mb": round((total - used) / _MB, 1) if total is not None and used is not None else None,
            "temp_c": temp / 1000.0 if temp is not None else None,
            # amdgpu exposes the critical (shutdown-level) limit; slowdown starts ~5 °C below it.
            "slowdown_c": crit / 1000.0 - 5.0 if crit is not None else None,
            "power_w": round(power / 1e6, 1) if power is not None else None,
            "power_limit_w": round(cap / 1e6, 1) if cap is not None else None,
            "util_pct": float(busy) if busy is not None else None,
            "throttle_reasons": None,
            "estimated": False,
        })
    return gpus
