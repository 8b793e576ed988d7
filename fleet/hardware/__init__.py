"""Hardware probes for the hardware supervisor: NVIDIA (NVML), AMD (sysfs),
Apple (unified-memory estimate) and the CPU/memory/disk probe, plus the tier
controller (`tiers`) and model-server care (`model_server`).

`GpuProbe.read()` picks the first backend that finds a GPU and returns
`(source, gpus)`; with none it returns `("cpu", [])`, never raising.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import amd, apple
from .nvml import NvmlProbe

log = logging.getLogger("fleet.hardware")


class GpuProbe:
    """Tries NVML first, then AMD sysfs, then the Apple estimate. Each backend
    that reports no GPU is skipped; NVML is re-tried on its own backoff."""

    def __init__(self, *, nvml: NvmlProbe | None = None, amd_root: str = amd.SYSFS_DRM,
                 platform: str | None = None, machine: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.nvml = nvml if nvml is not None else NvmlProbe(clock=clock)
        self.amd_root = amd_root
        self.platform = platform
        self.machine = machine

    def read(self) -> tuple[str, list[dict]]:
        gpus = self.nvml.read()
        if gpus:
            return "nvml", gpus
        try:
            gpus = amd.read_gpus(self.amd_root)
        except OSError as exc:  # a sysfs oddity must never stop the monitor
            log.warning("AMD sysfs probe failed: %s", exc)
            gpus = []
        if gpus:
            return "amd-sysfs", gpus
        gpus = apple.read_gpus(platform=self.platform, machine=self.machine)
        if gpus:
            return "apple-estimate", gpus
        return "cpu", []

    def close(self) -> None:
        self.nvml.close()
