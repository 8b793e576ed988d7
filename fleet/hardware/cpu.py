"""CPU, memory and disk probe (psutil): what every machine reports, GPU or not."""

from __future__ import annotations

import os
import shutil

import psutil

_MB = 1024 * 1024
# Sensor chips that carry the CPU package temperature, most specific first.
_CPU_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal", "acpitz")


class CpuProbe:
    """Reads CPU load, memory and the fleet home's disk. `cpu_percent` is the
    average since the previous read (psutil's non-blocking mode)."""

    def __init__(self, disk_path: str):
        self.disk_path = disk_path
        psutil.cpu_percent(interval=None)  # prime: the first non-blocking call returns 0.0

    def read(self) -> dict:
        return {"cpu": self.cpu(), "memory": self.memory(), "disk": self.disk()}

    def cpu(self) -> dict:
        try:
            load = [round(x, 2) for x in os.getloadavg()]
        except (AttributeError, OSError):  # Windows
            load = None
        return {"percent": psutil.cpu_percent(interval=None), "count": psutil.cpu_count(),
                "load_avg": load, "temp_c": cpu_temperature()}

    @staticmethod
    def memory() -> dict:
        vm = psutil.virtual_memory()
        return {"total_mb": round(vm.total / _MB, 1), "used_mb": round((vm.total - vm.available) / _MB, 1),
                "available_mb": round(vm.available / _MB, 1), "percent": vm.percent}

    def disk(self) -> dict:
        path = self.disk_path
        while path and not os.path.exists(path):
            path = os.path.dirname(path)
        try:
            du = shutil.disk_usage(path or "/")
        except OSError:
            return {"path": self.disk_path, "total_mb": None, "used_mb": None, "free_mb": None, "percent": None}
        return {"path": self.disk_path, "total_mb": round(du.total / _MB, 1), "used_mb": round(du.used / _MB, 1),
                "free_mb": round(du.free / _MB, 1),
                "percent": round(100.0 * du.used / du.total, 1) if du.total else None}


def cpu_temperature() -> float | None:
    """The CPU package temperature, or None where the OS exposes none."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        sensors = reader()
    except (OSError, RuntimeError):
        return None
    for chip in _CPU_SENSORS:
        entries = sensors.get(chip)
        if entries:
            for e in entries:  # prefer the package sensor
                if e.label and ("package" in e.label.lower() or e.label.lower() == "tctl"):
                    return round(e.current, 1)
            return round(max(e.current for e in entries), 1)
    return None
