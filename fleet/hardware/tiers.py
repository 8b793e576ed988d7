"""Model-tier selection with thermal hysteresis: a pure, clock-injected state
machine. Each `update(sample)` returns the tier to use for the NEXT model call
(a running generation is never interrupted) and whether it changed, and why.

Rules ([thermal] and [models.tiers] in fleet.toml):
* CPU tier when eco mode is on, the training lock is held, or no GPU is seen.
* VRAM: the largest tier whose `vram_gb` x (1 + margin) fits the free VRAM plus
  what the fleet's model server already holds. A tier that stops fitting is
  left after `vram_down_samples` samples, at once in a VRAM emergency; a
  bigger tier is taken only after it has fitted for `vram_up_hold_s` and
  `min_change_interval_s` has passed since the last change.
* Thermal: limit = min(slowdown - slowdown_margin_c, gpu_max_sustained_c).
  `hot_samples` samples at or over the limit, or an active thermal throttle,
  step down ONE tier (state ok -> hot). While hot, another step needs the
  temperature to climb `escalate_c` over the last step's (or a throttle that
  lasts past `min_change_interval_s`), so a GPU hovering around one value
  never walks the fleet down to the CPU. Every GPU at least `cool_delta_c`
  under its limit -> cooling; after `cool_hold_s` of cooling and
  `min_change_interval_s` since the last change: up ONE tier.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from .nvml import THERMAL_THROTTLE_REASONS

THERMAL_DEFAULTS = {
    "gpu_max_sustained_c": 75.0, "slowdown_margin_c": 5.0, "hot_samples": 2, "escalate_c": 5.0,
    "cool_delta_c": 8.0, "cool_hold_s": 60.0, "min_change_interval_s": 120.0,
    "vram_margin_pct": 20.0, "vram_emergency_pct": 95.0, "vram_down_samples": 2, "vram_up_hold_s": 60.0,
}


class TierConfigError(ValueError):
    """[models.tiers] is unusable; the message says which tier and what to fix."""


@dataclasses.dataclass(frozen=True)
class Tier:
    name: str
    model: str
    vram_gb: float
    num_gpu: int | None = None  # None: the model server decides; 0: CPU only

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "num_gpu": self.num_gpu}


def tiers_from_config(cfg: dict) -> list[Tier]:
    """Enabled tiers, largest VRAM first, the CPU tier last."""
    gpu_tiers, cpu = [], None
    for name, t in cfg["models"]["tiers"].items():
        if not t["enabled"]:
            continue
        model = t["model"].strip()
        if not model:
            raise TierConfigError(f"[models.tiers.{name}] has no model; set model = \"name:tag\"")
        num_gpu = None if t["num_gpu"] < 0 else t["num_gpu"]
        vram = float(t["vram_gb"])
        if name == "cpu":
            cpu = Tier("cpu", model, 0.0, 0)
        elif vram <= 0:
            raise TierConfigError(f"[models.tiers.{name}] vram_gb must be > 0 (only the cpu tier needs none)")
        else:
            gpu_tiers.append(Tier(name, model, vram, num_gpu))
    if cpu is None:
        raise TierConfigError("[models.tiers.cpu] is missing or disabled; the CPU tier is the fallback "
                              "every machine needs (model = \"qwen3:4b\")")
    gpu_tiers.sort(key=lambda t: -t.vram_gb)
    return gpu_tiers + [cpu]


@dataclasses.dataclass
class Sample:
    gpus: list[dict]
    server_held_mb: float = 0.0  # VRAM the fleet's model server holds (Ollama /api/ps size_vram)
    eco_mode: bool = False
    training_holder: str | None = None


@dataclasses.dataclass
class Decision:
    tier: Tier
    changed: bool  # also true for the first decision (previous is None then)
    previous: Tier | None
    reason: str
    changed_at: float | None  # wall-clock time of the last change
    thermal_state: str
    hottest_c: float | None
    limit_c: float | None
    thermal_throttle: bool
    available_vram_mb: float | None


class TierController:
    def __init__(self, tiers: list[Tier], thermal: dict | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        if not tiers or tiers[-1].name != "cpu":
            raise TierConfigError("the tier list must end with the cpu tier")
        self.tiers = tiers
        self.cfg = dict(THERMAL_DEFAULTS, **(thermal or {}))
        self.clock, self.wall = clock, wall
        self.cpu_idx = len(tiers) - 1
        self.idx: int | None = None
        self.reason = "not decided yet"
        self.changed_at: float | None = None
        self.last_change = -math.inf
        self.forced: str | None = None
        self.thermal_state = "ok"
        self.thermal_cap = 0  # the largest tier (lowest index) thermal allows
        self.hot_count = 0
        self.step_temp: float | None = None
        self.cool_since: float | None = None
        self.vram_short = 0
        self.up_since: float | None = None

    @property
    def tier(self) -> Tier:
        return self.tiers[self.cpu_idx if self.idx is None else self.idx]

    # -- measurements --------------------------------------------------------
    def _thermal_view(self, gpus: list[dict]):
        c = self.cfg
        hottest = limit_of_hottest = None
        hot = throttle = False
        cool = True
        for g in gpus:
            reasons = g.get("throttle_reasons") or []
            if THERMAL_THROTTLE_REASONS.intersection(reasons):
                throttle = True
            temp = g.get("temp_c")
            if temp is None:
                continue
            limit = c["gpu_max_sustained_c"]
            if g.get("slowdown_c") is not None:
                limit = min(g["slowdown_c"] - c["slowdown_margin_c"], limit)
            if hottest is None or temp - limit > hottest - limit_of_hottest:
                hottest, limit_of_hottest = temp, limit
            hot = hot or temp >= limit
            cool = cool and temp <= limit - c["cool_delta_c"]
        return hottest, limit_of_hottest, hot or throttle, cool and not throttle, throttle

    def _capacity(self, gpus: list[dict], held_mb: float):
        """(largest fitting tier index, available MB, emergency?)"""
        frees = [g["vram_free_mb"] for g in gpus if g.get("vram_free_mb") is not None]
        if not frees:
            return 0, None, False  # VRAM not readable: no VRAM constraint can be computed
        available = max(frees) + max(0.0, held_mb or 0.0)
        margin = 1.0 + self.cfg["vram_margin_pct"] / 100.0
        cap = next(i for i, t in enumerate(self.tiers) if t.vram_gb * 1024.0 * margin <= available)
        full = any(g.get("vram_used_mb") is not None and g.get("vram_total_mb")
                   and 100.0 * g["vram_used_mb"] / g["vram_total_mb"] >= self.cfg["vram_emergency_pct"]
                   for g in gpus)
        return cap, available, full

    # -- the state machine -----------------------------------------------------
    def _thermal_step(self, now: float, base: int, hottest, hot: bool, cool: bool, throttle: bool) -> str | None:
        """Advance ok/hot/cooling; returns 'down', 'up' or None."""
        c = self.cfg
        if self.thermal_state == "ok":
            if not hot:
                self.hot_count = 0
                return None
            self.hot_count += 1
            if self.hot_count >= c["hot_samples"] or throttle:
                self.thermal_state, self.hot_count, self.step_temp = "hot", 0, hottest
                self.thermal_cap = min(self.cpu_idx, max(self.thermal_cap, base + 1))
                return "down"
            return None
        if hot:
            if self.thermal_state == "cooling":
                self.thermal_state, self.cool_since = "hot", None
            self.hot_count += 1
            escalated = hottest is not None and self.step_temp is not None and hottest >= self.step_temp + c["escalate_c"]
            lasting_throttle = throttle and now - self.last_change >= c["min_change_interval_s"]
            if self.hot_count >= c["hot_samples"] and (escalated or lasting_throttle) and base < self.cpu_idx:
                self.hot_count, self.step_temp = 0, hottest
                self.thermal_cap = min(self.cpu_idx, max(self.thermal_cap, base + 1))
                return "down"
            return None
        self.hot_count = 0
        if not cool:  # between the limit and limit - cool_delta: no longer hot, not yet cool
            self.thermal_state, self.cool_since = "hot", None
            return None
        if self.thermal_state == "hot":
            self.thermal_state, self.cool_since = "cooling", now
        if now - self.cool_since >= c["cool_hold_s"] and now - self.last_change >= c["min_change_interval_s"]:
            self.thermal_cap = max(0, min(self.thermal_cap, base) - 1)
            self.cool_since = now
            if self.thermal_cap == 0:
                self.thermal_state, self.step_temp = "ok", None
            return "up"
        return None

    def update(self, sample: Sample) -> Decision:
        now = self.clock()
        c = self.cfg
        gpus = sample.gpus or []
        hottest, limit, hot, cool, throttle = self._thermal_view(gpus)
        cap, available, full = self._capacity(gpus, sample.server_held_mb)

        forced = None
        if sample.eco_mode:
            forced = "eco mode is on (CPU tier pinned)"
        elif sample.training_holder:
            forced = f"training lock held by {sample.training_holder} (GPU left to training)"
        elif not gpus:
            forced = "no GPU detected"

        new, why = self.idx, None
        if forced:
            # While forced to CPU the thermal state is still reported, but no steps are taken.
            if hot:
                self.thermal_state = "hot"
            elif cool and self.thermal_cap == 0:
                self.thermal_state = "ok"
            self.vram_short, self.up_since = 0, None
            new, why = self.cpu_idx, forced
        else:
            if self.forced and self.thermal_state != "ok" and self.step_temp is None:
                # "hot" was only reported while forced to CPU; no step was taken
                # then, so start the hot handling afresh (it steps down as usual).
                self.thermal_state, self.hot_count = "ok", 0
            # before the first decision, steps are taken from the tier VRAM allows
            base = cap if self.idx is None or self.forced else self.idx
            move = self._thermal_step(now, base, hottest, hot, cool, throttle)
            want = max(cap, self.thermal_cap)
            if self.idx is None or self.forced:
                new = want
                why = ("start" if self.idx is None else f"{self.forced.split(' (')[0]} no longer applies") + \
                    self._why_fit(cap, available)
                self.vram_short, self.up_since = 0, None
            elif want > self.idx:
                self.up_since = None
                if move == "down":
                    new = want
                    why = (f"thermal: GPU at {hottest:.0f} °C, limit {limit:.0f} °C" if hottest is not None
                           else "thermal: the GPU reports thermal throttling")
                    if throttle:
                        why += " (thermal throttle active)"
                else:
                    self.vram_short += 1
                    if full or self.vram_short >= c["vram_down_samples"]:
                        new = want
                        why = ("VRAM emergency: " if full else "VRAM: ") + self._why_fit(cap, available).lstrip("; ")
            else:
                self.vram_short = 0
                if want < self.idx:
                    if move == "up":
                        new = max(want, self.idx - 1)
                        why = f"thermal: cooled to {hottest:.0f} °C for {c['cool_hold_s']:.0f} s" if hottest is not None \
                            else "thermal: cooled"
                        self.up_since = None
                    else:
                        if self.up_since is None:
                            self.up_since = now
                        if now - self.up_since >= c["vram_up_hold_s"] and now - self.last_change >= c["min_change_interval_s"]:
                            new = want
                            why = "VRAM freed: " + self._why_fit(cap, available).lstrip("; ")
                else:
                    self.up_since = None
        self.forced = forced

        previous = self.tier if self.idx is not None else None
        changed = new != self.idx
        if changed:
            self.idx = new
            self.reason = why or "tier selection"
            self.last_change = now
            self.changed_at = self.wall()
            self.up_since = None
            self.vram_short = 0
        return Decision(tier=self.tier, changed=changed, previous=previous,
                        reason=self.reason, changed_at=self.changed_at, thermal_state=self.thermal_state,
                        hottest_c=hottest, limit_c=limit, thermal_throttle=throttle,
                        available_vram_mb=available)

    def _why_fit(self, cap: int, available: float | None) -> str:
        if available is None:
            return "; VRAM not readable, largest tier assumed"
        t = self.tiers[cap]
        margin = self.cfg["vram_margin_pct"]
        if t.name == "cpu":
            return f"; {available / 1024:.1f} GB VRAM free+held fits no GPU tier with a {margin:.0f}% margin"
        return f"; {available / 1024:.1f} GB VRAM free+held fits {t.name} ({t.model}, {t.vram_gb:g} GB + {margin:.0f}%)"
