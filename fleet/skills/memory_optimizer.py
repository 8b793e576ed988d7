"""memory_optimizer skill (fleet care, no model): `audit` RSS per worker, models loaded
on the local model server and store/WAL sizes; `optimize` unloads idle models and asks
high-RSS workers to recycle between tasks; `compact` checkpoints the WALs and prunes old
knowledge artifacts per [knowledge] retention; `monitor` watches memory for `duration_s`
and, under pressure (available RAM under [skills.memory_optimizer] min_available_mb, or a
worker over rss_limit_mb), asks the supervisor through a store message to stop its idle
extra workers and unloads idle models, logging each action. Never touches a running task.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import time

from fleet.hosts import is_supervisor
from fleet.skills._common import SkillError, knowledge_root, skill_options

DESCRIPTION = ("Fleet memory care: audit (worker RSS, loaded models, store/WAL size), optimize (unload idle "
               "models, ask high-RSS workers to recycle between tasks), compact (WAL checkpoint, prune old "
               "knowledge artifacts per [knowledge] retention), monitor (watch memory pressure: scale down "
               "idle extra workers, unload idle models).")
REQUIRES_MODEL = False
REQUIRES_NETWORK = False  # talks only to the local model server
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 3900  # a monitor watches for up to an hour; the other actions take seconds
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["audit", "optimize", "compact", "monitor"]},
        "duration_s": {"type": "number", "minimum": 1, "maximum": 3600,
                       "description": "monitor: how long to watch (default 3600; schedule it to keep watching)"},
        "interval_s": {"type": "number", "minimum": 0.2, "maximum": 600,
                       "description": "monitor: seconds between looks (default 15)"},
        "dry_run": {"type": "boolean", "description": "report what optimize/compact would do, change nothing"},
        "rss_limit_mb": {"type": "number", "exclusiveMinimum": 0, "description": "override the recycle threshold"},
    },
    "required": ["action"],
    "additionalProperties": False,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def _duration_s(value) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value or ""))
    if not m:
        return None
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _mb(n: float | None) -> float | None:
    return None if n is None else round(n / 1048576, 1)


# -- workers ---------------------------------------------------------------
def worker_memory(store, host: str | None = None) -> list[dict]:
    """RSS of every registered agent process on this host (pid reuse is detected)."""
    import psutil

    host = host or socket.gethostname()
    out = []
    for agent in store.list_agents():
        row = {"name": agent["name"], "role": agent["role"], "status": agent["status"], "pid": agent["pid"],
               "current_task": agent["current_task"], "rss_mb": None, "alive": False}
        if agent["host"] != host or not agent["pid"]:
            row["note"] = "on another host" if agent["host"] != host else "no pid recorded"
            out.append(row)
            continue
        try:
            proc = psutil.Process(agent["pid"])
            if proc.create_time() > agent["started_at"] + 5:
                row["note"] = "pid now belongs to another process (agent gone)"
            else:
                row.update(alive=True, rss_mb=_mb(proc.memory_info().rss), threads=proc.num_threads())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            row["note"] = "process not running"
        except psutil.AccessDenied:
            row["note"] = "access denied reading the process"
        out.append(row)
    return out


# -- models ----------------------------------------------------------------
def _ollama_servers(config: dict) -> list[tuple[str, dict]]:
    return [(name, p) for name, p in config["providers"].items() if p["type"] == "ollama"]


def _keep_models(config: dict) -> set[str]:
    keep = set(skill_options(config, "memory_optimizer")["keep_models"])
    conductor = config["models"]["conductor_model"]
    if conductor:
        keep.add(conductor)
    try:
        from fleet.hw_state import read_hw_state

        state = read_hw_state(config)
        if not state.get("stale") and (state.get("tier") or {}).get("model"):
            keep.add(state["tier"]["model"])
    except Exception:  # noqa: BLE001 - a broken state file only means no tier model to keep
        pass
    return keep


def loaded_models(config: dict) -> list[dict]:
    """Models loaded on each configured Ollama server (GET /api/ps), with idle time
    estimated from expires_at and the provider's keep_alive."""
    import httpx

    from fleet.providers.ollama import OllamaProvider

    min_idle = float(skill_options(config, "memory_optimizer")["model_idle_s"])
    keep, out = _keep_models(config), []
    for name, settings in _ollama_servers(config):
        base = (settings["base_url"] or OllamaProvider.default_base_url).rstrip("/")
        entry = {"provider": name, "server": base, "reachable": False, "models": []}
        try:
            resp = httpx.get(f"{base}/api/ps", timeout=5.0)
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            out.append(entry)
            continue
        entry["reachable"] = True
        keep_alive = _duration_s(settings["keep_alive"])
        for m in data.get("models") or []:
            idle_for = None
            expires = m.get("expires_at")
            if expires and keep_alive is not None:
                try:
                    exp = _dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", expires).replace("Z", "+00:00"))
                    idle_for = max(0.0, time.time() - (exp.timestamp() - keep_alive))
                except (ValueError, OverflowError, OSError):
                    idle_for = None
            model_name = m.get("name") or m.get("model")
            kept = model_name in keep
            entry["models"].append({
                "name": model_name, "size_mb": _mb(m.get("size")), "vram_mb": _mb(m.get("size_vram")),
                "expires_at": expires, "idle_s": None if idle_for is None else round(idle_for, 1), "kept": kept,
                "idle": (not kept) and (idle_for is None or idle_for >= min_idle),
            })
        out.append(entry)
    return out


def unload_model(server: str, model: str) -> None:
    """Ask Ollama to unload a model now (a generate request with keep_alive 0)."""
    import httpx

    resp = httpx.post(f"{server}/api/generate", json={"model": model, "keep_alive": 0}, timeout=30.0)
    resp.raise_for_status()


# -- store and knowledge -----------------------------------------------------
def _file_mb(path: str) -> float | None:
    try:
        return _mb(os.path.getsize(path))
    except OSError:
        return None


def storage(config: dict, store) -> dict:
    from fleet.rag import index_path

    st = store.stats()
    rag = str(index_path(config))
    return {"db_mb": _mb(st["db_bytes"]), "wal_mb": _mb(st["wal_bytes"]), "db_path": st["path"],
            "rag_db_mb": _file_mb(rag), "rag_wal_mb": _file_mb(rag + "-wal"),
            "knowledge_mb": _mb(sum(p.stat().st_size for p in knowledge_root(config).rglob("*") if p.is_file()))}


def prune_knowledge(config: dict, dry_run: bool) -> dict:
    """Delete files older than [knowledge] retention_days in the [knowledge] prune_dirs folders."""
    k = config["knowledge"]
    days = float(k["retention_days"])
    if days <= 0:
        return {"retention_days": days, "removed": [], "note": "retention_days = 0 keeps everything"}
    cutoff = time.time() - days * 86400
    root = knowledge_root(config)
    removed, freed = [], 0
    for rel in k["prune_dirs"]:
        folder = (root / rel).resolve()
        if root not in folder.parents or not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink() and p.stat().st_mtime < cutoff:
                freed += p.stat().st_size
                removed.append(str(p.relative_to(root)))
                if not dry_run:
                    p.unlink()
    return {"retention_days": days, "removed": removed, "freed_mb": _mb(freed), "dry_run": dry_run}


# -- actions -----------------------------------------------------------------
def run(payload: dict, config: dict, log) -> dict:
    from fleet.db import shared_store

    action, dry = payload["action"], bool(payload.get("dry_run", False))
    opts = skill_options(config, "memory_optimizer")
    limit_mb = float(payload.get("rss_limit_mb") or opts["rss_limit_mb"])
    store = shared_store(config)
    if action == "audit":
        workers = worker_memory(store, config["fleet"]["host"])
        rss = [w["rss_mb"] for w in workers if w["rss_mb"] is not None]
        return {"action": "audit", "workers": workers, "total_worker_rss_mb": round(sum(rss), 1),
                "rss_limit_mb": limit_mb, "over_limit": [w["name"] for w in workers if (w["rss_mb"] or 0) > limit_mb],
                "model_servers": loaded_models(config), "storage": storage(config, store)}
    if action == "optimize":
        unloaded, failed, asked = [], [], []
        for server in loaded_models(config):
            for m in server["models"]:
                if not m["idle"]:
                    continue
                if dry:
                    unloaded.append({"server": server["server"], "model": m["name"], "dry_run": True})
                    continue
                try:
                    unload_model(server["server"], m["name"])
                    unloaded.append({"server": server["server"], "model": m["name"], "freed_vram_mb": m["vram_mb"]})
                except Exception as exc:  # noqa: BLE001 - report per model, go on with the rest
                    failed.append({"server": server["server"], "model": m["name"], "error": str(exc)})
        for w in worker_memory(store, config["fleet"]["host"]):
            if w["alive"] and (w["rss_mb"] or 0) > limit_mb and not is_supervisor(w):
                body = {"type": "recycle", "reason": f"RSS {w['rss_mb']} MB over {limit_mb} MB",
                        "when": "between_tasks"}
                if not dry:
                    store.send_message("memory_optimizer", w["name"], body, channel="agent")
                asked.append({"worker": w["name"], "rss_mb": w["rss_mb"], "busy_with_task": w["current_task"]})
        log.info("memory_optimizer optimize: unloaded %d models, asked %d workers to recycle", len(unloaded), len(asked))
        return {"action": "optimize", "dry_run": dry, "unloaded_models": unloaded, "unload_errors": failed,
                "recycle_requested": asked, "rss_limit_mb": limit_mb}
    if action == "compact":
        before = storage(config, store)
        checkpoint = None if dry else store.checkpoint("TRUNCATE")
        from fleet.rag import RagIndex, index_path

        rag = index_path(config)
        if rag.exists() and not dry:
            with RagIndex(rag) as index:
                index.checkpoint()
        pruned = prune_knowledge(config, dry)
        return {"action": "compact", "dry_run": dry, "checkpoint": checkpoint, "pruned": pruned,
                "before": before, "after": storage(config, store)}
    if action == "monitor":
        return monitor(config, store, log, duration_s=float(payload.get("duration_s") or 3600),
                       interval_s=float(payload.get("interval_s") or 15), limit_mb=limit_mb)
    raise SkillError(f"unknown action {action!r}; use audit, optimize, compact or monitor")


def pressure(config: dict, store, limit_mb: float) -> str | None:
    """Why memory is under pressure now, or None: available RAM under
    min_available_mb, or a live worker of this host over the RSS limit."""
    import psutil

    floor = float(skill_options(config, "memory_optimizer")["min_available_mb"])
    available = _mb(psutil.virtual_memory().available)
    if floor and available < floor:
        return f"available RAM {available} MB is under {floor:g} MB"
    big = [w for w in worker_memory(store, config["fleet"]["host"])
           if w["alive"] and (w["rss_mb"] or 0) > limit_mb and not is_supervisor(w)]
    if big:
        return ", ".join(f"{w['name']} at {w['rss_mb']} MB" for w in big) + f" over the {limit_mb:g} MB RSS limit"
    return None


def monitor(config: dict, store, log, *, duration_s: float, interval_s: float, limit_mb: float) -> dict:
    """Look every `interval_s` for `duration_s`. Under pressure, at most once a
    cooldown: ask this host's supervisor (a store message) to stop its idle
    extra workers, and unload idle models. Each action is logged and returned."""
    from fleet.hosts import supervisor_name

    cooldown = float(skill_options(config, "memory_optimizer")["monitor_cooldown_s"])
    actions, looks, last_acted = [], 0, -1e18
    end = time.monotonic() + duration_s
    while True:
        looks += 1
        why = pressure(config, store, limit_mb)
        if why and time.monotonic() - last_acted >= cooldown:
            last_acted = time.monotonic()
            mid = store.send_message("memory_optimizer", supervisor_name(config),
                                     {"type": "scale_down", "reason": why}, channel="sup")
            log.warning("memory pressure (%s): asked the supervisor to stop its idle extra workers", why)
            unloaded = []
            for server in loaded_models(config):
                for m in server["models"]:
                    if m["idle"]:
                        try:
                            unload_model(server["server"], m["name"])
                            unloaded.append(m["name"])
                            log.warning("memory pressure: unloaded idle model %s from %s", m["name"], server["server"])
                        except Exception as exc:  # noqa: BLE001 - report it, keep watching
                            log.warning("memory pressure: could not unload %s: %s", m["name"], exc)
            actions.append({"at": time.time(), "why": why, "scale_down_message": mid, "unloaded_models": unloaded})
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval_s, left))
    return {"action": "monitor", "looks": looks, "duration_s": duration_s, "actions": actions,
            "pressure_now": pressure(config, store, limit_mb)}

