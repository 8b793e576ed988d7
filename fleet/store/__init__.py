"""The store package: one backend-neutral API over the fleet's durable state.

`Store` composes the SQLite connection layer with the task queue and the
fleet-state tables; `PostgresStore` composes the same parts with the
PostgreSQL layer (a fleet on several hosts); `open_store(cfg)` picks one by
`[store] backend`. Callers use `fleet.db` (which re-exports this), never SQL.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .errors import (
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    NotFound,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
)
from .fleetstate import CHANNELS, FleetStateMixin
from .hardware import HardwareMixin
from .history import HistoryMixin
from .monitoring import MonitoringMixin
from .operations import OperationsMixin
from .reports import ReportsMixin
from .schema import ALERT_SEVERITIES, SCHEMA_VERSION, TASK_STATUSES, TERMINAL_STATUSES
from .sqlite_base import DURABILITY_MODES, SQLiteBase
from .tasks import Page, Task, TaskQueueMixin
from .usage import UsageMixin
from .values import now
from .workflows import WorkflowMixin


class Store(TaskQueueMixin, HistoryMixin, FleetStateMixin, ReportsMixin, MonitoringMixin, HardwareMixin, UsageMixin,
            OperationsMixin, WorkflowMixin, SQLiteBase):
    """The fleet's store on SQLite (WAL). Safe to share across threads; each
    thread and each process gets its own reused connection."""


def postgres_store(dsn: str, **options) -> Any:
    """A store on PostgreSQL (`PostgresStore`; options as PostgresBase takes
    them). psycopg is imported here, on first use, not by every process."""
    from .pg_store import PostgresStore

    return PostgresStore(dsn, **options)


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # lazily, for the same reason
        from .pg_store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def store_dsn(config: dict[str, Any]) -> str:
    """The PostgreSQL DSN of a loaded config: FLEET_STORE_DSN (environment,
    else the secrets file, where a password may live) wins over [store] dsn."""
    dsn = os.environ.get("FLEET_STORE_DSN")
    if not dsn and "paths" in config:
        from fleet.secret_file import get_secret

        try:
            dsn = get_secret(config, "FLEET_STORE_DSN")
        except Exception:  # noqa: BLE001 - an unreadable secrets file is reported where secrets are loaded
            dsn = None
    return dsn or config.get("store", {}).get("dsn") or ""


_shared: dict[tuple[int, str], Any] = {}
_shared_lock = threading.Lock()


def shared_store(config: dict[str, Any]) -> Store:
    """This process's one Store for the configured database, opened (and
    migrated) once and reused by every caller: skills, the routing layer."""
    store_cfg = config.get("store", {})
    where = (store_dsn(config), store_cfg.get("schema", "fleet")) if store_cfg.get("backend") == "postgresql" \
        else config["paths"]["db"]
    key = (os.getpid(), str(where))
    with _shared_lock:
        store = _shared.get(key)
        if store is None:
            store = _shared[key] = open_store(config)
    return store


def open_store(config: dict[str, Any] | str | os.PathLike, *, migrate: bool = True) -> Store:
    """Open the store named by a loaded config (or a database path, with the
    store's own defaults: for tests and tools). The config's `[queue]` is the
    validated one `fleet.config` fills in, so each setting is read as it is.
    `migrate=False` reads nothing yet: for `restore_from` over a store that
    may be damaged (it brings the schema up to date itself)."""
    if isinstance(config, (str, os.PathLike)):
        return Store(config, migrate=migrate)
    queue = config["queue"]
    if config.get("store", {}).get("backend", "sqlite") == "postgresql":
        return postgres_store(store_dsn(config), schema=config["store"].get("schema", "fleet"), migrate=migrate,
                              host=config.get("fleet", {}).get("host"), **_queue_options(queue))
    return Store(
        config["paths"]["db"],
        migrate=migrate,
        home_history=lambda: home_history(config),
        host=config.get("fleet", {}).get("host"),
        shared_read=bool(config["paths"].get("shared_read")),
        **_queue_options(queue),
    )


def _queue_options(queue: dict[str, Any]) -> dict[str, Any]:
    """The store options a validated `[queue]` sets, the same for every backend."""
    return {
        "synchronous": queue["synchronous"],
        "busy_timeout_s": queue["busy_timeout_s"],
        "max_payload_bytes": queue["max_payload_bytes"],
        "default_max_attempts": queue["max_attempts"],
        "backoff_base_s": queue["backoff_base_s"],
        "backoff_max_s": queue["backoff_max_s"],
        "lease_s": queue["lease_s"],
        "max_crashes": queue["max_crashes"],
        "poison_window_s": queue["poison_window_s"],
    }


def home_history(config: dict[str, Any]) -> dict | None:
    """What the fleet home of a loaded config already holds beside its
    database: {"backups": [ids, newest first], "logs": folder or None,
    "knowledge": folder or None}, or None for a new home. The store asks only
    when its database file exists but holds no Fleet schema (was it emptied,
    or is it new?), never on an ordinary open."""
    # What a complete backup is, is fleet.backup's to say.
    from fleet.backup import list_backups

    def used(folder: str) -> str | None:
        try:
            with os.scandir(folder) as entries:
                return folder if any(True for _ in entries) else None
        except OSError:
            return None

    paths = config["paths"]
    history = {"backups": [b["id"] for b in list_backups(config)], "logs": used(paths["logs"]),
               "knowledge": used(paths["knowledge"])}
    return history if any(history.values()) else None


__all__ = [
    "Store", "postgres_store", "store_dsn", "open_store", "shared_store", "Task", "Page", "now",
    "StoreError", "StoreUnavailable", "StoreDamaged", "InvalidInput", "InvalidTransition", "LeaseLost", "NotFound",
    "TASK_STATUSES", "TERMINAL_STATUSES", "ALERT_SEVERITIES", "CHANNELS",
    "DURABILITY_MODES", "SCHEMA_VERSION",
]
