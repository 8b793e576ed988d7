"""The hardware supervisor: every interval it probes CPU, memory, disk, GPUs and
the local model server, chooses the model tier, and writes hw_state.json
atomically; it records tier changes as events, raises GPU-temperature alerts
from the file's own keys, and keeps downsampled history in the store.
"""

if __package__ in (None, ""):  # run as `python fleet/hw_supervisor.py`
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    __package__ = "fleet"

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from filelock import FileLock, Timeout

from fleet.hosts import qualified
from fleet.config import load_or_exit
from fleet.db import open_store
from fleet.hardware import GpuProbe
from fleet.hardware.cpu import CpuProbe
from fleet.hardware.model_server import (
    ManagedServer,
    ModelServerCare,
    conductor_model,
    normalise,
    server_url,
)
from fleet.hardware.nvml import NvmlProbe
from fleet.hardware.tiers import (
    Sample,
    TierConfigError,
    TierController,
    tiers_from_config,
)
from fleet.hw_state import (
    SCHEMA_VERSION,
    remove_stale_temp_files,
    temperature_alerts,
    write_hw_state,
)
from fleet.store.errors import StoreError

log = logging.getLogger("hw_supervisor")
ACTOR = "hw_supervisor"
EX_TEMPFAIL = 75  # another instance holds this fleet home
HEARTBEAT_EVERY_S = 30.0
MAX_POLL_FAILURES = 5


def _mean(values):
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 2) if vals else None


def _max(values):
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


class HwSupervisor:
    """One poll = probe, choose the tier, write hw_state.json, side effects.
    `store` may be None (file only); store errors are logged, never fatal."""

    def __init__(self, cfg: dict, *, store=None, gpu_probe: GpuProbe | None = None,
                 clock=time.monotonic, interval_s: float | None = None):
        self.cfg = cfg
        self.actor = qualified(cfg, ACTOR)  # the agents row the supervisor keeps for this service
        self.store = store
        self.clock = clock
        hw = cfg["hardware"]
        self.interval_s = float(interval_s or hw["interval_s"])
        self.path = cfg["paths"]["hw_state"]
        remove_stale_temp_files(self.path)
        self.host = socket.gethostname()
        self.cpu = CpuProbe(cfg["home"])
        self.gpu = gpu_probe or GpuProbe(nvml=NvmlProbe(clock=clock, max_backoff_s=hw["nvml_retry_max_s"]),
                                         clock=clock)
        self.tiers = tiers_from_config(cfg)
        self.controller = TierController(self.tiers, cfg["thermal"], clock=clock)
        ms = cfg["model_server"]
        self.conductor = conductor_model(cfg)
        self.managed: ManagedServer | None = None
        self.care: ModelServerCare | None = None
        if ms["enabled"]:
            if ms["start_command"]:
                self.managed = ManagedServer(
                    ms["start_command"], os.path.join(cfg["home"], "model_server.pid"),
                    log_file=os.path.join(cfg["paths"]["logs"], "model_server.log"),
                    stop_timeout_s=ms["stop_timeout_s"])
            self.care = ModelServerCare(
                server_url(cfg), keep_alive=ms["keep_alive"], keepalive_interval_s=ms["keepalive_interval_s"],
                conductor_interval_s=ms["conductor_interval_s"], timeout_s=ms["probe_timeout_s"],
                unhealthy_probes=ms["unhealthy_probes"], restart_min_interval_s=ms["restart_min_interval_s"],
                managed=self.managed, on_event=self._event, on_alert=self._alert, clock=clock)
        self.alert_last: dict[str, float] = {}
        self.history: list[dict] = []
        self.history_due = clock() + hw["history_interval_s"]
        self.polls = 0
        self.heartbeat_due = clock()
        self.last_poll_ms: float | None = None
        self.last_poll_cpu_ms: float | None = None
        self.cpu_pct: float | None = None
        self._cpu_mark: tuple[float, float] | None = None
        self._cpu_logged = True

    # -- store side effects (never fatal) ------------------------------------------
    def _store_call(self, what: str, fn, *args, **kw):
        if self.store is None:
            return None
        try:
            return fn(*args, **kw)
        except (StoreError, OSError) as exc:  # a busy/broken database must not stop hw_state.json
            log.warning("could not %s in the store: %s", what, exc)
            return None

    def _event(self, action: str, detail: dict) -> None:
        log.info("%s %s", action, json.dumps(detail, default=str))
        if self.store is not None:
            self._store_call(f"record event {action}", self.store.record_event, self.actor, action, detail=detail)

    def _alert(self, severity: str, key: str, message: str) -> None:
        now = self.clock()
        if now - self.alert_last.get(key, -1e18) < self.cfg["hardware"]["alert_repeat_s"]:
            return
        self.alert_last[key] = now
        log.warning("alert %s: %s", key, message)
        if self.store is not None:
            # per host: two hosts' GPUs running hot are two alerts
            self._store_call("raise an alert", self.store.raise_alert, severity, self.actor, message,
                             dedup_key=qualified(self.cfg, key))

    def _eco_mode(self) -> bool:
        flag = None
        if self.store is not None:
            flag = self._store_call("read the eco_mode flag", self.store.get_flag, "eco_mode", None)
        return bool(self.cfg["fleet"]["eco_mode"] if flag is None else flag)

    def _training(self) -> dict:
        if self.store is None:
            return {"holder": None, "expires_at": None}
        lock = self._store_call("read the training lock", self.store.lock_holder, "training")
        return {"holder": lock["holder"], "expires_at": lock["expires_at"]} if lock else \
            {"holder": None, "expires_at": None}

    # -- one poll -------------------------------------------------------------------
    def start_model_server_if_configured(self) -> None:
        """Start the configured server when nothing answers on its port (never a second one)."""
        if self.managed is None or self.care is None or self.managed.running() or self.care.port_open():
            return
        try:
            pid = self.managed.start()
        except OSError as exc:  # a wrong start_command must not stop the hardware state being written
            message = (f"could not start the model server with [model_server] start_command "
                       f"{' '.join(self.managed.command)!r}: {exc}; fix the command in fleet.toml, or start "
                       "the server yourself")
            log.error("%s", message)
            self._alert("warning", "model_server_start_failed", message)
            return
        self._event("model_server_start", {"url": self.care.base_url, "pid": pid,
                                           "why": "nothing answered on the port at start"})

    def poll_once(self) -> dict:
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        base = self.cpu.read()
        source, gpus = self.gpu.read()
        eco = self._eco_mode()
        training = self._training()
        if self.care is not None:
            models = self.care.observe(self.conductor)
        else:
            models = {"server_url": None, "server_reachable": False, "loaded": [], "held_vram_mb": 0.0,
                      "conductor_model": self.conductor, "conductor_loaded": None, "enabled": False}
        decision = self.controller.update(Sample(gpus=gpus, server_held_mb=models.get("held_vram_mb") or 0.0,
                                                 eco_mode=eco, training_holder=training["holder"]))
        if decision.changed:
            detail = {"from": decision.previous.name if decision.previous else None, "to": decision.tier.name,
                      "model": decision.tier.model, "reason": decision.reason}
            old = decision.previous
            if (old is not None and self.care is not None and models.get("server_reachable")
                    and self.tiers.index(decision.tier) > self.tiers.index(old)
                    and old.model not in (decision.tier.model, self.conductor)
                    and any(normalise(m["name"]) == normalise(old.model) for m in models.get("loaded") or [])):
                # Stepping down frees the bigger model's VRAM (training needs it evicted).
                self.care.unload(old.model)
                detail["unloaded"] = old.model
            self._event("tier_change", detail)
        if self.care is not None:  # warm the tier just chosen, not the one before it
            self.care.warm(models, decision.tier.model, decision.tier.num_gpu)
        tier = dict(decision.tier.to_dict(), reason=decision.reason, changed_at=decision.changed_at)
        state = {
            "schema_version": SCHEMA_VERSION,
            "written_at": time.time(),
            "interval_s": self.interval_s,
            "host": self.host,
            "source": source,
            "cpu": base["cpu"],
            "memory": base["memory"],
            "disk": base["disk"],
            "gpus": gpus,
            "tier": tier,
            "thermal": {"state": decision.thermal_state, "gpu_temp_c": decision.hottest_c,
                        "limit_c": decision.limit_c,
                        "gpu_max_sustained_c": float(self.cfg["thermal"]["gpu_max_sustained_c"]),
                        "thermal_throttle": decision.thermal_throttle},
            "models": models,
            "training": training,
            "eco_mode": eco,
            "vram_available_mb": decision.available_vram_mb,
            "probe": {"nvml": self.gpu.nvml.status()},
            "overhead": {"poll_ms": self.last_poll_ms, "poll_cpu_ms": self.last_poll_cpu_ms,
                         "cpu_pct": self.cpu_pct, "pid": os.getpid()},
        }
        text = write_hw_state(self.path, state)
        # Alerts are evaluated from the exact document just written, key for key.
        for alert in temperature_alerts(json.loads(text)):
            self._alert(alert["severity"], alert["dedup_key"], alert["message"])
        self._history(state)
        self._heartbeat(state)
        self.polls += 1
        self.last_poll_ms = round((time.perf_counter() - t_wall) * 1000, 2)
        self.last_poll_cpu_ms = round((time.process_time() - t_cpu) * 1000, 2)
        return state

    def _heartbeat(self, state: dict) -> None:
        """Refresh the agents row the fleet supervisor keeps for this service (no row: nothing)."""
        now = self.clock()
        if self.store is None or now < self.heartbeat_due:
            return
        self.heartbeat_due = now + HEARTBEAT_EVERY_S
        self._store_call("heartbeat", self.store.heartbeat, self.actor, progress=self.polls + 1,
                         detail={"tier": state["tier"]["name"], "source": state["source"],
                                 "thermal": state["thermal"]["state"]})

    def _history(self, state: dict) -> None:
        gpus = state["gpus"]
        self.history.append({
            "cpu_pct": state["cpu"]["percent"], "mem_pct": state["memory"]["percent"],
            "gpu_temp_c": _max(g["temp_c"] for g in gpus), "gpu_util_pct": _mean(g["util_pct"] for g in gpus),
            "vram_used_mb": sum(g["vram_used_mb"] or 0 for g in gpus) if gpus else None,
            "vram_total_mb": sum(g["vram_total_mb"] or 0 for g in gpus) if gpus else None,
            "power_w": sum(g["power_w"] or 0 for g in gpus) if gpus else None,
            "gpus": [{"index": g["index"], "temp_c": g["temp_c"], "vram_used_mb": g["vram_used_mb"],
                      "util_pct": g["util_pct"]} for g in gpus],
        })
        now = self.clock()
        if now < self.history_due:
            return
        self.history_due = now + self.cfg["hardware"]["history_interval_s"]
        h, self.history = self.history, []
        sample = {
            "cpu_pct": _mean(x["cpu_pct"] for x in h), "mem_pct": _mean(x["mem_pct"] for x in h),
            "gpu_temp_c": _max(x["gpu_temp_c"] for x in h), "gpu_util_pct": _mean(x["gpu_util_pct"] for x in h),
            "vram_used_mb": _max(x["vram_used_mb"] for x in h), "vram_total_mb": h[-1]["vram_total_mb"],
            "power_w": _mean(x["power_w"] for x in h), "tier": state["tier"]["name"],
            "thermal_state": state["thermal"]["state"], "gpus": h[-1]["gpus"],
        }
        if self.store is not None:
            self._store_call("record a hardware sample", self.store.record_hw_sample, sample,
                             retention_s=self.cfg["hardware"]["history_retention_h"] * 3600.0)

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event, *, max_polls: int | None = None) -> None:
        start = self.clock()
        n = failures = 0
        while not stop.is_set():
            try:
                self.poll_once()
                failures = 0
            except OSError as exc:  # e.g. the disk is full: say so and keep trying
                log.error("could not write %s: %s; retrying next interval", self.path, exc)
            except Exception:
                failures += 1
                log.exception("poll failed (%d in a row)", failures)
                if failures >= MAX_POLL_FAILURES:  # a persistent bug: exit non-zero so the supervisor sees it
                    raise
            n += 1
            self._overhead(n)
            if max_polls is not None and n >= max_polls:
                return
            deadline = start + n * self.interval_s
            now = self.clock()
            if deadline < now:  # overran: skip missed slots rather than burst
                start += (now - deadline) // self.interval_s * self.interval_s + self.interval_s
                deadline = start + n * self.interval_s
            stop.wait(max(0.0, deadline - now))

    def _overhead(self, n: int) -> None:
        if n == 1:
            log.info("overhead: first poll took %.1f ms wall, %.1f ms CPU (interval %.1f s)",
                     self.last_poll_ms or 0, self.last_poll_cpu_ms or 0, self.interval_s)
            self._cpu_mark = (self.clock(), time.process_time())
            self._cpu_logged = False
            return
        if self._cpu_mark is None:
            return
        t0, c0 = self._cpu_mark
        elapsed = self.clock() - t0
        if elapsed >= 60.0:
            self.cpu_pct = round(100.0 * (time.process_time() - c0) / elapsed, 3)
            if not self._cpu_logged:
                log.info("overhead: %.3f%% of one core over %.0f s (%d polls; target <= 0.3%% at a 5 s interval)",
                         self.cpu_pct, elapsed, n - 1)
                self._cpu_logged = True
            self._cpu_mark = (self.clock(), time.process_time())

    def close(self, *, stop_model_server: bool = False) -> None:
        if self.care is not None:
            self.care.close()
        if stop_model_server and self.managed is not None and self.managed.running():
            how = self.managed.stop()
            self._event("model_server_stop", {"why": "hardware supervisor stopped", "how": how})
        self.gpu.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hw_supervisor", description=__doc__)
    parser.add_argument("--home", help="fleet home (default: FLEET_HOME, the current directory or the repo)")
    parser.add_argument("--interval", type=float, help="seconds between writes (default: [hardware] interval_s)")
    parser.add_argument("--once", action="store_true", help="write hw_state.json once and exit")
    parser.add_argument("--polls", type=int, help="stop after this many polls")
    parser.add_argument("--no-store", action="store_true", help="do not open the database (file only)")
    parser.add_argument("--verbose", action="store_true", help="also log to stderr")
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval <= 0:
        parser.error("--interval must be > 0")
    cfg = load_or_exit(args.home)
    from fleet.logs import setup_process_logging

    setup_process_logging("hw_supervisor", cfg, to_stderr=args.verbose)
    # One writer per fleet home: a second instance would fight over hw_state.json.
    os.makedirs(cfg["home"], exist_ok=True)
    single = FileLock(os.path.join(cfg["home"], ".hw_supervisor.lock"))
    try:
        single.acquire(timeout=0)
    except Timeout:
        print(f"hw_supervisor: another hardware supervisor is already running for {cfg['home']}; "
              "stop it first (or let the fleet supervisor manage it)", file=sys.stderr)
        return EX_TEMPFAIL
    store = None
    if not args.no_store:
        try:
            store = open_store(cfg)
        except (StoreError, OSError) as exc:  # keep writing hw_state.json without a database
            log.error("could not open the store (%s); running without events, alerts and history", exc)
    try:
        sup = HwSupervisor(cfg, store=store, interval_s=args.interval)
    except TierConfigError as exc:
        print(f"hw_supervisor: configuration error: {exc}", file=sys.stderr)
        return 78
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("hw_supervisor pid %d writing %s every %.1f s", os.getpid(), sup.path, sup.interval_s)
    try:
        sup.start_model_server_if_configured()
        sup.run(stop, max_polls=1 if args.once else args.polls)
    finally:
        sup.close(stop_model_server=stop.is_set() and cfg["model_server"]["stop_with_fleet"])
        if store is not None:
            store.close()
        single.release()
    log.info("hw_supervisor stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
