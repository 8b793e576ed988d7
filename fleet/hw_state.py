"""hw_state.json: its documented, versioned schema, the atomic writer and the
reader every component uses (`read_hw_state(cfg)`), plus the GPU-temperature
alert rule evaluated from the very keys the file carries. Light: no NVML here.

Schema (version 1). Temperatures in °C, memory in MiB, power in W, times in
UTC epoch seconds. A value the hardware cannot report is null, never absent.

    schema_version  int      1
    written_at      float    when the writer produced this snapshot
    interval_s      float    the writer's polling interval
    host            str      hostname
    source          str      nvml | amd-sysfs | apple-estimate | cpu
    cpu             {percent, count, load_avg[1,5,15] | null, temp_c | null}
    memory          {total_mb, used_mb, available_mb, percent}
    disk            {path, total_mb, used_mb, free_mb, percent}   (the fleet home's disk)
    gpus[]          {index, uuid, name, vram_total_mb, vram_used_mb, vram_free_mb,
                     temp_c, slowdown_c, power_w, power_limit_w, util_pct,
                     throttle_reasons[] | null, estimated (true: Apple unified-memory estimate)}
    tier            {name, model, num_gpu, reason, changed_at}
    thermal         {state ok|hot|cooling, gpu_temp_c (hottest), limit_c,
                     gpu_max_sustained_c, thermal_throttle, since}
    models          {server_url, server_reachable, server_managed, loaded[{name, size_mb, vram_mb}],
                     tier_model_loaded, conductor_model, conductor_loaded, last_keepalive_at}
    training        {holder | null, expires_at | null}
    eco_mode        bool
    overhead        {poll_ms, cpu_pct}   (the writer's own cost)
    stale           bool     added by the reader: true when older than 3 intervals

The writer never rewrites fleet.toml: the tier lives only in this file.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from .atomic import atomic_write_text

SCHEMA_VERSION = 1
SOURCES = ("nvml", "amd-sysfs", "apple-estimate", "cpu")
THERMAL_STATES = ("ok", "hot", "cooling")
STALE_AFTER_INTERVALS = 3

_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}

# A JSON Schema of the file, for tests and for anyone consuming the file.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Fleet hw_state.json",
    "type": "object",
    "required": ["schema_version", "written_at", "interval_s", "host", "source", "cpu", "memory",
                 "disk", "gpus", "tier", "thermal", "models", "training", "eco_mode"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "written_at": {"type": "number"},
        "interval_s": {"type": "number", "exclusiveMinimum": 0},
        "host": {"type": "string"},
        "source": {"enum": list(SOURCES)},
        "cpu": {"type": "object", "required": ["percent", "count", "load_avg", "temp_c"],
                "properties": {"percent": _NUM, "count": {"type": ["integer", "null"]},
                               "load_avg": {"type": ["array", "null"], "items": {"type": "number"}},
                               "temp_c": _NUM}},
        "memory": {"type": "object", "required": ["total_mb", "used_mb", "available_mb", "percent"]},
        "disk": {"type": "object", "required": ["path", "total_mb", "used_mb", "free_mb", "percent"]},
        "gpus": {"type": "array", "items": {
            "type": "object",
            "required": ["index", "uuid", "name", "vram_total_mb", "vram_used_mb", "vram_free_mb", "temp_c",
                         "slowdown_c", "power_w", "power_limit_w", "util_pct", "throttle_reasons"],
            "properties": {"index": {"type": "integer"}, "uuid": _STR, "name": _STR,
                           "vram_total_mb": _NUM, "vram_used_mb": _NUM, "vram_free_mb": _NUM,
                           "temp_c": _NUM, "slowdown_c": _NUM, "power_w": _NUM, "power_limit_w": _NUM,
                           "util_pct": _NUM,
                           "throttle_reasons": {"type": ["array", "null"], "items": {"type": "string"}}}}},
        "tier": {"type": "object", "required": ["name", "model", "reason", "changed_at"],
                 "properties": {"name": {"type": "string"}, "model": {"type": "string"},
                                "reason": {"type": "string"}, "changed_at": _NUM}},
        "thermal": {"type": "object", "required": ["state", "gpu_temp_c", "limit_c", "gpu_max_sustained_c"],
                    "properties": {"state": {"enum": list(THERMAL_STATES)}, "gpu_temp_c": _NUM,
                                   "limit_c": _NUM, "gpu_max_sustained_c": {"type": "number"}}},
        "models": {"type": "object", "required": ["server_reachable", "loaded", "conductor_loaded"],
                   "properties": {"server_reachable": {"type": "boolean"},
                                  "loaded": {"type": "array", "items": {
                                      "type": "object", "required": ["name", "size_mb", "vram_mb"]}},
                                  "conductor_loaded": {"type": ["boolean", "null"]}}},
        "training": {"type": "object", "required": ["holder"], "properties": {"holder": _STR}},
        "eco_mode": {"type": "boolean"},
    },
}


def hw_state_path(cfg: dict) -> str:
    return cfg["paths"]["hw_state"]


def cpu_tier(cfg: dict) -> dict:
    """The CPU tier from `[models.tiers.cpu]` (the fallback everyone assumes)."""
    return {"name": "cpu", "model": cfg["models"]["tiers"]["cpu"]["model"], "num_gpu": 0}


def write_hw_state(path: str | os.PathLike, state: dict) -> str:
    """Write `state` atomically (temp file in the same directory, fsync,
    rename, directory fsync). Returns the exact JSON text written."""
    text = json.dumps(state, separators=(",", ":"), allow_nan=False, sort_keys=False)
    atomic_write_text(path, text, fsync_dir=True)
    return text


def remove_stale_temp_files(path: str | os.PathLike, older_than_s: float = 60.0) -> int:
    """Delete temp files a writer killed mid-write left next to `path`."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    cutoff = time.time() - older_than_s
    for name in names:
        if name.startswith(".hw_state.") and name.endswith(".tmp"):
            full = os.path.join(directory, name)
            try:
                if os.path.getmtime(full) < cutoff:
                    os.unlink(full)
                    removed += 1
            except OSError:
                pass
    return removed


def _assumed(cfg: dict, why: str, interval: float) -> dict:
    tier = cpu_tier(cfg)
    return {
        "schema_version": SCHEMA_VERSION, "written_at": None, "interval_s": interval, "host": None,
        "source": "cpu", "cpu": None, "memory": None, "disk": None, "gpus": [],
        "tier": dict(tier, reason=why, changed_at=None),
        "thermal": {"state": "ok", "gpu_temp_c": None, "limit_c": None,
                    "gpu_max_sustained_c": cfg["thermal"]["gpu_max_sustained_c"]},
        "models": {"server_reachable": False, "loaded": [], "conductor_loaded": None},
        "training": {"holder": None}, "eco_mode": bool(cfg["fleet"]["eco_mode"]),
        "stale": True, "stale_reason": why,
    }


def read_hw_state(cfg: dict, *, now: float | None = None) -> dict:
    """The current hardware state. Always a dict with `stale` and `tier`.
    Missing, unreadable, foreign-version or older-than-3-intervals data is
    reported `stale: true` with the CPU tier assumed (the rest kept when readable)."""
    interval = float(cfg["hardware"]["interval_s"])
    path = hw_state_path(cfg)
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        return _assumed(cfg, f"no hardware state yet ({path} is missing; is hw_supervisor running?)", interval)
    except (OSError, ValueError) as exc:
        return _assumed(cfg, f"hardware state unreadable ({exc})", interval)
    if not isinstance(state, dict) or state.get("schema_version") != SCHEMA_VERSION:
        version = state.get("schema_version") if isinstance(state, dict) else None
        return _assumed(cfg, f"hardware state has schema version {version!r}, expected {SCHEMA_VERSION}",
                        interval)
    now = time.time() if now is None else now
    try:
        written = float(state.get("written_at"))
        file_interval = float(state.get("interval_s") or interval)
    except (TypeError, ValueError):
        return _assumed(cfg, "hardware state has no valid written_at", interval)
    if not (math.isfinite(written) and math.isfinite(file_interval)) or not isinstance(state.get("tier"), dict):
        return _assumed(cfg, "hardware state has a non-finite written_at/interval_s or no tier", interval)
    age = now - written
    # The file's own interval is trusted only up to the configured one: a
    # huge value there must not keep a day-old file fresh.
    limit = STALE_AFTER_INTERVALS * min(max(file_interval, 0.001), max(interval, 0.001))
    state["age_s"] = round(age, 3)
    if age > limit or age < -limit:  # written "in the future": the clock stepped back since
        why = (f"hardware state is {age:.0f} s old (over {limit:.0f} s); CPU tier assumed" if age > 0 else
               f"hardware state is dated {-age:.0f} s in the future (the clock changed?); CPU tier assumed")
        state["stale"] = True
        state["stale_reason"] = why
        state["tier"] = dict(cpu_tier(cfg), reason=why, changed_at=None)
    else:
        state["stale"] = False
    return state


def temperature_alerts(state: dict) -> list[dict]:
    """GPU-temperature alerts implied by a hw_state document: one per GPU whose
    `gpus[i].temp_c` is at or over `thermal.gpu_max_sustained_c`. Uses only the
    keys the file carries, so the writer and any reader agree by construction."""
    thermal = state.get("thermal") or {}
    limit = thermal.get("gpu_max_sustained_c")
    out = []
    if limit is None:
        return out
    for gpu in state.get("gpus") or []:
        temp = gpu.get("temp_c")
        if temp is None or temp < limit:
            continue
        ident = gpu.get("uuid") or f"index{gpu.get('index')}"
        out.append({
            "severity": "critical" if gpu.get("slowdown_c") is not None and temp >= gpu["slowdown_c"] else "warning",
            "dedup_key": f"hw:gpu_temp:{ident}",
            "message": (f"GPU {gpu.get('index')} ({gpu.get('name') or 'unknown'}) is at {temp:.0f} °C, over the "
                        f"sustained limit of {limit:.0f} °C ([thermal] gpu_max_sustained_c). The model tier is "
                        "stepped down automatically; check the fans and airflow, or lower the limit."),
            "gpu_index": gpu.get("index"), "temp_c": temp, "limit_c": limit,
        })
    return out
