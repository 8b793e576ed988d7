"""Config drift: which configuration each process runs, and the last good
fleet.toml.

Every worker records the hash of the configuration it loaded (`config_hash`,
in its `agent_start` event). `status`, STATUS.md and the dashboard compare it
with the fleet's current one (fleet.toml as it is now) and mark workers that
run an older one as "stale config" (`lead_client restart --stale` restarts
just those). The supervisor watches fleet.toml while it runs (`ConfigWatch`):
a change that is valid becomes the new `fleet.toml.last-good`; one that is
not keeps the fleet on the configuration it runs, with a warning alert naming
the bad key, and `--check-config` shows the diff against the last good file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
from pathlib import Path

from .atomic import atomic_write_text

log = logging.getLogger("fleet.config")
LAST_GOOD = "fleet.toml.last-good"
_NOT_SETTINGS = ("home", "config_file")


def config_hash(cfg: dict) -> str:
    """A short hash of the settings a loaded config holds (comments and
    layout of fleet.toml do not change it)."""
    settings = {k: v for k, v in cfg.items() if k not in _NOT_SETTINGS}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def last_good_path(cfg: dict) -> Path:
    return Path(cfg["home"]) / LAST_GOOD


def save_last_good(cfg: dict) -> None:
    """Keep fleet.toml, just loaded without error, as the last good file."""
    src = Path(cfg["config_file"])
    try:
        text = src.read_text(encoding="utf-8")
    except OSError:
        return  # no fleet.toml (the defaults): nothing to keep
    try:
        atomic_write_text(last_good_path(cfg), text, mode=0o600)
    except OSError as exc:
        log.warning("cannot keep %s: %s", last_good_path(cfg), exc)


def diff_against_last_good(home: str | os.PathLike) -> str | None:
    """The unified diff from fleet.toml.last-good to fleet.toml, or None
    without a last good file."""
    home = Path(home)
    good = home / LAST_GOOD
    try:
        before = good.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return None
    try:
        after = (home / "fleet.toml").read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except OSError:
        after = []
    return "".join(difflib.unified_diff(before, after, fromfile=LAST_GOOD, tofile="fleet.toml"))


def stale_agents(agents: list[dict], starts: dict[str, dict], current: str) -> dict[str, str]:
    """{agent name: the hash it runs} for live workers whose last start
    recorded a config hash other than `current` (`starts`: the store's
    last_event_per_agent(["agent_start"])). The supervisor is left out: it
    runs on its last good config, and a restart of the fleet is its own."""
    out = {}
    for a in agents:
        if a.get("role") == "supervisor":
            continue
        detail = (starts.get(a["name"]) or {}).get("detail") or {}
        ran = detail.get("config_hash") if isinstance(detail, dict) else None
        if ran and ran != current and a["status"] not in ("stopped", "parked"):
            out[a["name"]] = ran
    return out


class ConfigWatch:
    """For the supervisor: notice fleet.toml changing while the fleet runs."""

    def __init__(self, cfg: dict, alert, resolve, changed=None):
        self.cfg = cfg
        self.home = cfg["home"]
        self.path = Path(cfg["config_file"])
        # (message) -> None; () -> None; (old hash, new hash) -> None
        self.alert, self.resolve, self.changed = alert, resolve, changed
        self.seen = self._stamp()
        self.bad = False
        self.current = config_hash(cfg)  # the hash of fleet.toml as it is now (its last valid state)
        save_last_good(cfg)

    def _stamp(self):
        try:
            st = self.path.stat()
            return st.st_mtime_ns, st.st_size, st.st_ino
        except OSError:
            return None

    def check(self) -> None:
        stamp = self._stamp()
        if stamp == self.seen:
            return
        self.seen = stamp
        from .config import ConfigError, load_config

        try:
            new = load_config(self.home)
        except ConfigError as exc:
            message = (f"fleet.toml became invalid while the fleet runs: {exc}. The fleet keeps running on its "
                       f"last good configuration ({LAST_GOOD}); fix the file (`python fleet/supervisor.py "
                       "--check-config` shows the error and the diff) before restarting anything")
            log.error("%s", message)
            self.bad = True
            self.alert(message)
            return
        save_last_good(new)
        if self.bad:
            self.bad = False
            self.resolve()
        if config_hash(new) != self.current:
            log.warning("fleet.toml changed (config %s -> %s): running workers keep the old one until restarted "
                        "(lead_client.py restart --stale)", self.current, config_hash(new))
            old, self.current = self.current, config_hash(new)
            if self.changed is not None:
                self.changed(old, self.current)
