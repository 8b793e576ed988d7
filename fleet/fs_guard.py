"""The filesystem guard: which files a skill may read and write.

`[filesystem.zones]` names folders and what skills may do there (`read` or
`read_write`); `[filesystem.overrides.SKILL]` gives one skill its own zones
(and `access = "full"` lets it write in them even where the zone is
read-only); `[filesystem.enterprise]` says whether a violation is refused
(`enforce = true`) or only logged (the default), whether a path in no zone is
a violation (`deny_by_default`), and whether every access is logged
(`log_all_access`). Decisions are written as JSON lines to
`logs/fs_access.log`. No zones configured (the default): every path is
allowed, as before, and nothing is logged unless `log_all_access` is on.

Paths are judged after resolving symlinks and `..` (`Path.resolve`), so a
link out of a zone or `zone/../elsewhere` is judged where it really leads.
The skills' own helpers (fleet/skills/_common.py: `resolve_input`,
`read_text`, `iter_files`, `knowledge_path`, `atomic_write_text`) call
`guard` for the running skill, which the worker sets (`running_skill`) around
each task; a file a folder walk would read but the guard refuses is left out
of the walk.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from pathlib import Path

READ, WRITE = "read", "write"
# (skill, task id, config) of the skill running in this thread, set by the worker
_skill: contextvars.ContextVar[tuple[str, int | None, dict] | None] = contextvars.ContextVar("fleet_skill",
                                                                                            default=None)
_log_lock = threading.Lock()


class AccessDenied(PermissionError):
    """A skill's access that the guard refuses (enforce = true)."""


@contextlib.contextmanager
def running_skill(skill: str, task_id: int | None, cfg: dict):
    """Mark the code inside as `skill` running task `task_id` under `cfg` (the
    worker does, around each task): the guard judges its file accesses."""
    token = _skill.set((skill, task_id, cfg))
    try:
        yield
    finally:
        _skill.reset(token)


def guard(path: str | os.PathLike, mode: str) -> bool:
    """For the skills' helpers: judge an access by the running skill (no
    skill running, as in the CLI: nothing to judge). True when it may go
    ahead; raises AccessDenied when the guard enforces a violation."""
    running = _skill.get()
    if running is None:
        return True
    return check(running[2], path, mode)


def _section(cfg: dict, name: str) -> dict:
    return (cfg.get("filesystem") or {}).get(name) or {}


def _zones(cfg: dict) -> dict[str, tuple[Path, str]]:
    home = Path(cfg["home"])
    out = {}
    for name, zone in _section(cfg, "zones").items():
        p = Path(os.path.expanduser(zone["path"]))
        out[name] = ((p if p.is_absolute() else home / p).resolve(), zone["access"])
    return out


def decide(cfg: dict, path: str | os.PathLike, mode: str, skill: str | None) -> tuple[bool, str]:
    """(allowed, why) for `skill` doing `mode` (read/write) on `path`, before
    enforcement: allowed=False is a violation whatever `enforce` says."""
    zones = _zones(cfg)
    policy = _section(cfg, "enterprise")
    target = Path(path).resolve()
    if not zones:
        if policy.get("deny_by_default"):
            return False, "no [filesystem.zones] are declared and deny_by_default is on"
        return True, "no zones declared"
    override = _section(cfg, "overrides").get(skill or "")
    names = [z for z in override["zones"] if z in zones] if override else list(zones)
    inside = [n for n in names if target == zones[n][0] or zones[n][0] in target.parents]
    if not inside:
        if override:
            return False, (f"{target} is outside the zones skill {skill} may use ({', '.join(names) or 'none'}); "
                           f"add it to [filesystem.overrides.{skill}] zones")
        if policy.get("deny_by_default"):
            return False, f"{target} is in no declared zone (deny_by_default); add a zone under [filesystem.zones]"
        return True, "in no zone (deny_by_default is off)"
    if mode == READ:
        return True, f"zone {inside[0]}"
    for n in inside:
        access = zones[n][1]
        if access == "read_write" or (override and override.get("access") in ("read_write", "full")):
            return True, f"zone {n}"
    return False, (f"zone {inside[0]} is read-only and {target} would be written; give the zone "
                   f"access = \"read_write\" or the skill an override in [filesystem.overrides]")


def check(cfg: dict, path: str | os.PathLike, mode: str) -> bool:
    """Judge an access by the running skill, log it as configured, and raise
    AccessDenied for a violation when the guard enforces. True: allowed;
    False: a violation let through (enforce = false)."""
    running = _skill.get()
    skill, task_id = (running[0], running[1]) if running else (None, None)
    allowed, why = decide(cfg, path, mode, skill)
    policy = _section(cfg, "enterprise")
    enforce = bool(policy.get("enforce"))
    if not allowed or policy.get("log_all_access"):
        decision = "allowed" if allowed else ("denied" if enforce else "violation (logged only: enforce = false)")
        _log(cfg, {"ts": round(time.time(), 3), "skill": skill, "task_id": task_id, "mode": mode,
                   "path": str(Path(path).resolve()), "decision": decision, "reason": why})
    if not allowed and enforce:
        raise AccessDenied(f"the filesystem guard refuses to {mode} {Path(path).resolve()}: {why}")
    return allowed


def _log(cfg: dict, record: dict) -> None:
    folder = cfg["paths"]["logs"]
    try:
        os.makedirs(folder, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with _log_lock:
            fd = os.open(os.path.join(folder, "fs_access.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
    except OSError:
        pass  # the audit line is lost, never the task: the decision above stands
