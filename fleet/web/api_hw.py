"""Hardware endpoints (present where the hardware supervisor's reader exists):
/api/thermal (GPU temperature, VRAM, power, throttle reasons, tier and
thermal state from hw_state.json), /api/training (the training lock and GPU
memory) and /api/hw/history (stored samples for sparklines, when kept).
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from .common import ctx, doc, int_arg, str_arg

TRAINING_LOCK = "training"


def _thermal() -> dict:
    c = ctx()
    hw = c.read_hw()
    tier = hw.get("tier") or {}
    changed = tier.get("changed_at")
    return {
        "stale": bool(hw.get("stale")), "stale_reason": hw.get("stale_reason"),
        "age_s": hw.get("age_s"), "written_at": hw.get("written_at"), "source": hw.get("source"),
        "host": hw.get("host"), "interval_s": hw.get("interval_s"),
        "tier": {**tier, "age_s": (time.time() - changed) if changed else None},
        "thermal": hw.get("thermal"), "gpus": hw.get("gpus") or [],
        "cpu": hw.get("cpu"), "memory": hw.get("memory"), "disk": hw.get("disk"),
        "models": hw.get("models"), "eco_mode": hw.get("eco_mode"),
        "limits": {"gpu_max_sustained_c": (hw.get("thermal") or {}).get("gpu_max_sustained_c"),
                   "limit_c": (hw.get("thermal") or {}).get("limit_c")},
    }


def install(app, c) -> None:
    bp = Blueprint("hw", __name__)

    @bp.get("/api/thermal")
    @doc("GPU temperature (with thresholds), VRAM, power, throttle reasons, model tier and thermal state "
         "from hw_state.json", tag="hardware")
    def thermal():
        return jsonify(_thermal())

    @bp.get("/api/training")
    @doc("Training status: whether the training lock is held (holder, since, expiry) and GPU memory",
         tag="hardware")
    def training():
        c = ctx()
        holder = c.store.lock_holder(TRAINING_LOCK)
        hw = c.read_hw()
        return jsonify({
            "active": holder is not None, "lock": holder,
            "hw_state_training": hw.get("training"),
            "tier": (hw.get("tier") or {}).get("name"),
            "gpus": [{"index": g.get("index"), "name": g.get("name"), "vram_used_mb": g.get("vram_used_mb"),
                      "vram_total_mb": g.get("vram_total_mb")} for g in hw.get("gpus") or []],
        })

    @bp.get("/api/hw/history")
    @doc("Stored hardware samples for sparklines (default: the last 15 minutes of this dashboard's host)",
         tag="hardware", query={"minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
                                "host": {"type": "string", "description": "another host of the fleet"}})
    def hw_history():
        c = ctx()
        minutes = int_arg("minutes", 15, lo=1, hi=1440)
        host = str_arg("host") or c.cfg["fleet"]["host"]
        return jsonify({"minutes": minutes, "host": host,
                        "samples": c.store.hw_samples(since=time.time() - minutes * 60, host=host)})

    app.register_blueprint(bp)
