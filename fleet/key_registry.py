"""The key registry: `keys_registry.toml` in the fleet home records, per secret
name, its provider, where Fleet uses it, when it was created and last rotated,
how often it must be rotated, and how many rotations it has had. It never
holds a value, and nothing here reads one: the `secret_rotate` skill checks
rotation periods from this file alone. `lead_client secret set/rotate/delete`
keep it up to date (written atomically, under a file lock, with tomlkit so an
operator's comments and edits survive).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

FILE_NAME = "keys_registry.toml"
DEFAULT_ROTATION_DAYS = 90
# Secrets Fleet itself uses, beyond the providers' api_key_env and web search keys.
_FLEET_SECRETS = {
    "FLEET_STORE_DSN": ("postgresql", "store: the PostgreSQL DSN ([store] backend = \"postgresql\")"),
    "FLEET_DASHBOARD_TOKEN": ("fleet", "dashboard: the access token"),
}
_HEADER = ("# Fleet key registry: metadata about each secret, never its value (values live in the secrets\n"
           "# file or the environment). Kept by `lead_client.py secret set|rotate|delete`; you may edit\n"
           "# provider, used_by and rotation_days. The secret_rotate skill warns about keys past their period.\n")


class RegistryError(Exception):
    """keys_registry.toml cannot be read or written; the message says what to fix."""


def registry_path(cfg: dict) -> Path:
    return Path(cfg["home"]) / FILE_NAME


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(microsecond=0)


def _epoch(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    return None


def read_registry(cfg: dict) -> dict[str, dict]:
    """{secret name: {provider, used_by, created_at, rotated_at (epoch seconds
    or None), rotation_days, rotations}}; {} when there is no registry yet."""
    path = registry_path(cfg)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{path} cannot be read ({exc}); fix it or move it aside, and `secret set` "
                            "recreates entries") from None
    keys = data.get("keys", {})
    out = {}
    for name, entry in keys.items() if isinstance(keys, dict) else ():
        if not isinstance(entry, dict):
            continue
        days = entry.get("rotation_days", DEFAULT_ROTATION_DAYS)
        out[name] = {
            "provider": entry.get("provider"),
            "used_by": list(entry.get("used_by", [])),
            "created_at": _epoch(entry.get("created_at")),
            "rotated_at": _epoch(entry.get("rotated_at")),
            "rotation_days": days if isinstance(days, (int, float)) and not isinstance(days, bool) else
            DEFAULT_ROTATION_DAYS,
            "rotations": int(entry.get("rotations", 0)),
        }
    return out


def infer_usage(cfg: dict, key: str) -> tuple[str | None, list[str]]:
    """(provider, where it is used) of a secret name, from the config."""
    used, providers = [], []
    for name, prov in cfg.get("providers", {}).items():
        if prov.get("api_key_env") == key:
            providers.append(name)
            used.append(f"providers.{name}")
    from fleet.skills.web_search import SECRET_KEYS

    for provider, name in SECRET_KEYS.items():
        if name == key:
            providers.append(provider)
            used.append(f"skills.web_search ({provider})")
    if key in _FLEET_SECRETS:
        providers.append(_FLEET_SECRETS[key][0])
        used.append(_FLEET_SECRETS[key][1])
    return (providers[0] if providers else None), used


def _update(cfg: dict, change) -> None:
    """Apply `change(doc)` to the registry under its lock and write it atomically."""
    import tomlkit
    from filelock import FileLock

    from fleet.atomic import atomic_write_text

    path = registry_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=10):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = _HEADER
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path} cannot be read ({exc})") from None
        try:
            doc = tomlkit.parse(text)
        except Exception as exc:  # noqa: BLE001 - tomlkit's parse errors have no common public base
            raise RegistryError(f"{path} is not valid TOML ({exc}); fix it or move it aside") from None
        if "keys" not in doc:
            doc["keys"] = tomlkit.table(is_super_table=True)
        change(doc["keys"])
        atomic_write_text(path, tomlkit.dumps(doc), mode=0o600)


def record_set(cfg: dict, key: str, *, ts: float, provider: str | None = None, used_by: list[str] | None = None,
               rotation_days: int | None = None) -> dict:
    """`secret set`: a new key gets an entry (created and rotated now); an
    existing one a new value, so it counts as rotated now. Options given
    replace the entry's; provider and used_by are otherwise inferred."""
    import tomlkit

    guess_provider, guess_used = infer_usage(cfg, key)

    def change(keys):
        entry = keys.get(key)
        if entry is None:
            entry = tomlkit.table()
            entry["provider"] = provider or guess_provider or "unknown"
            entry["used_by"] = used_by if used_by is not None else guess_used
            entry["created_at"] = _utc(ts)
            entry["rotated_at"] = _utc(ts)
            entry["rotation_days"] = rotation_days or DEFAULT_ROTATION_DAYS
            entry["rotations"] = 0
            keys[key] = entry
            return
        entry["rotated_at"] = _utc(ts)
        if provider:
            entry["provider"] = provider
        if used_by is not None:
            entry["used_by"] = used_by
        if rotation_days:
            entry["rotation_days"] = rotation_days

    _update(cfg, change)
    return read_registry(cfg)[key]


def record_rotation(cfg: dict, key: str, *, ts: float) -> dict:
    """`secret rotate`: rotated now, one more rotation (an entry is made for
    a key set before the registry existed)."""
    record_set(cfg, key, ts=ts)

    def change(keys):
        keys[key]["rotations"] = int(keys[key].get("rotations", 0)) + 1

    _update(cfg, change)
    return read_registry(cfg)[key]


def record_delete(cfg: dict, key: str) -> bool:
    """`secret delete`: the entry goes with the secret. True if there was one."""
    if key not in read_registry(cfg):
        return False

    def change(keys):
        keys.pop(key, None)

    _update(cfg, change)
    return True


def due(entry: dict, now: float) -> dict:
    """How an entry stands against its rotation period: {age_days,
    due_at, overdue (bool), overdue_days}."""
    since = entry["rotated_at"] or entry["created_at"]
    if since is None:
        return {"age_days": None, "due_at": None, "overdue": True, "overdue_days": None}
    due_at = since + entry["rotation_days"] * 86400.0
    return {"age_days": round((now - since) / 86400.0, 2), "due_at": due_at, "overdue": now >= due_at,
            "overdue_days": round(max(0.0, now - due_at) / 86400.0, 2)}


def overdue_keys(cfg: dict, now: float | None = None) -> list[dict]:
    """The keys past their rotation period, most overdue first:
    [{key, provider, used_by, rotated_at, rotation_days, age_days, due_at, overdue_days}]."""
    import time

    now = time.time() if now is None else now
    out = []
    for key, entry in read_registry(cfg).items():
        d = due(entry, now)
        if d["overdue"]:
            out.append({"key": key, "provider": entry["provider"], "used_by": entry["used_by"],
                        "rotated_at": entry["rotated_at"], "rotation_days": entry["rotation_days"],
                        "age_days": d["age_days"], "due_at": d["due_at"], "overdue_days": d["overdue_days"]})
    out.sort(key=lambda e: -(e["overdue_days"] or float("inf")))
    return out

