"""Preflight checks before (or while) running a fleet: config valid, store
writable and in WAL mode, free disk, logs writable, dashboard reachable when
enabled, configured model providers reachable. Each check is a dict
{name, ok, level ('ok' | 'fail' | 'warn' | 'not_running'), detail}; a check
that needs a running fleet says "not running" before the first start instead
of failing. Nothing here changes the fleet.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from typing import Any


def _check(name: str, ok: bool, detail: str, level: str = "fail") -> dict:
    return {"name": name, "ok": bool(ok), "level": "ok" if ok else level, "detail": detail}


def check_config(home: str | None) -> tuple[dict | None, list[dict]]:
    from fleet.config import ConfigError, ConfigWarning, load_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConfigWarning)
        try:
            cfg = load_config(home)
        except ConfigError as exc:
            return None, [_check("config", False, str(exc))]
    out = [_check("config", True, f"{cfg['config_file']} is valid"
                  + ("" if os.path.exists(cfg["config_file"]) else " (absent: defaults in use)"))]
    for w in caught:
        out.append(_check("config", False, str(w.message), level="warn"))
    return cfg, out


def check_store(cfg: dict) -> list[dict]:
    from fleet.db import open_store

    db = cfg["paths"]["db"]
    try:
        store = open_store(cfg)  # opening migrates under BEGIN IMMEDIATE: proves a write lock can be taken
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [_check("store", False, f"cannot open {db} for writing: {exc}")]
    try:
        stats = store.stats()
        try:
            found = store.integrity_check(quick=True)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            found = None
            integrity = _check("store_integrity", False, f"the integrity check could not run: {exc}", level="warn")
    finally:
        store.close()
    if found is not None:
        from fleet.outage import damage_message

        integrity = _check("store_integrity", found == "ok", "quick integrity check: ok" if found == "ok"
                           else damage_message(cfg, found))
    out = [_check("store", True, f"{db} opens for writing (schema {stats['schema_version']}, "
                  f"{stats['db_bytes'] // 1024} KiB, WAL {stats['wal_bytes'] // 1024} KiB)"), integrity]
    wal = str(stats["journal_mode"]).lower() == "wal"
    out.append(_check("store_wal", wal, f"journal mode is {stats['journal_mode']}" + (
        "" if wal else "; keep the database on a local disk (WAL does not work on network shares)")))
    return out


def check_disk(cfg: dict) -> dict:
    where = os.path.dirname(cfg["paths"]["db"]) or "."
    os.makedirs(where, exist_ok=True)
    free_mb = shutil.disk_usage(where).free // (1024 * 1024)
    need = cfg["preflight"]["min_free_disk_mb"]
    return _check("disk", free_mb >= need, f"{free_mb} MB free at {where} (need {need} MB"
                  + ("" if free_mb >= need else "; free space or move [paths] db") + ")")


def check_writable_dir(name: str, path: str) -> dict:
    try:
        os.makedirs(path, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".preflight-", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return _check(name, False, f"{path} is not writable: {exc.strerror}; fix its owner or mode")
    return _check(name, True, f"{path} is writable")


def _http_get(url: str, timeout: float) -> tuple[int | None, str]:
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            r = client.get(url)
        return r.status_code, ""
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _http_get_json(url: str, timeout: float, headers: dict | None = None) -> tuple[int | None, Any, str]:
    """(status, decoded JSON body or None, transport error text) of a GET."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            r = client.get(url, headers=headers or {})
    except httpx.HTTPError as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    try:
        body = r.json()
    except ValueError:
        body = None
    return r.status_code, body, ""


def _not_running(name: str, detail: str) -> dict:
    """A check that needs a running fleet, before it runs: said, never failed."""
    return {"name": name, "ok": True, "level": "not_running", "detail": f"not running: {detail}"}


def check_dashboard(cfg: dict) -> dict | None:
    """The dashboard answers, when it is on and the supervisor (which starts
    it) runs; before the first start it is "not running", not a failure."""
    dash = cfg["dashboard"]
    if not dash["enabled"] or cfg["fleet"]["air_gap_mode"]:
        return None
    from fleet.supervisor import running_supervisor_pid

    if running_supervisor_pid(cfg) is None:
        return _not_running("dashboard", "no supervisor runs for this fleet home, so neither does the dashboard "
                                         f"(port {dash['port']}); checked once the fleet is started")
    host = dash["host"]
    wildcard = ("0.0.0.0", "")  # nosec B104 - a wildcard bind is probed on loopback
    host = "127.0.0.1" if host in wildcard else ("[::1]" if host == "::" else host)
    url = f"http://{host}:{dash['port']}/"
    status, err = _http_get(url, cfg["preflight"]["timeout_s"])
    if status is None:
        return _check("dashboard", False, f"{url} is not reachable ({err}); is the supervisor running with the "
                      "dashboard service? ([dashboard] enabled = false turns this check off)")
    return _check("dashboard", True, f"{url} answers (HTTP {status})")


def _providers_in_use(cfg: dict) -> list[str]:
    models = cfg["models"]
    names = list(models["chain"])
    for chain in models["skill_chains"].values():
        names += [n for n in chain if n not in names]
    return [n for n in dict.fromkeys(names)]


def check_providers(cfg: dict, *, level: str = "fail") -> list[dict]:
    providers = cfg["providers"]
    offline = cfg["fleet"]["offline_mode"]
    timeout = cfg["preflight"]["timeout_s"]
    out = []
    for name in _providers_in_use(cfg):
        p = providers.get(name)
        if p is None:
            out.append(_check(f"provider:{name}", False, f"[models] names provider {name!r} but there is no "
                              f"[providers.{name}] table", level))
            continue
        base = p["base_url"].rstrip("/")
        cloud = _is_cloud(p)
        if cloud and offline:
            out.append(_check(f"provider:{name}", True, "skipped: cloud provider and offline mode is on"))
            continue
        if p["api_key_env"]:
            from fleet.secret_file import get_secret

            try:
                has_key = get_secret(cfg, p["api_key_env"]) is not None
            except Exception:  # noqa: BLE001 - a bad secrets file is reported as a missing key
                has_key = False
            if not has_key:
                out.append(_check(f"provider:{name}", False, f"no API key: secret {p['api_key_env']} is not set; "
                                  f"run `lead_client.py secret set {p['api_key_env']} -`", level))
                continue
        if not base:
            out.append(_check(f"provider:{name}", True, "no base_url to probe (the type's default is used)"))
            continue
        out += _probe_provider(cfg, name, p, base, timeout, level)
    return out


# The endpoint that proves a server speaks a provider type's protocol, and
# how its reply lists the models the server offers.
_MODEL_LISTS = {
    "ollama": ("/api/tags", "models", "name", "start it with `ollama serve`"),
    "openai_compatible": ("/v1/models", "data", "id", "start the server"),
    "claude": ("/v1/models", "data", "id", "check base_url"),
}


def _probe_provider(cfg: dict, name: str, p: dict, base: str, timeout: float, level: str) -> list[dict]:
    """GET the protocol's own model list (Ollama /api/tags, OpenAI /v1/models,
    Anthropic /v1/models): any other answer, a 404 from a server that is not
    that API included, fails; the models it offers are compared with the
    ones the config names."""
    spec = _MODEL_LISTS.get(p["type"])
    check = f"provider:{name}"
    if spec is None:  # a provider type without a known model list: any answer at its URL
        status, err = _http_get(base + "/", timeout)
        return [_check(check, status is not None, f"{base} answers (HTTP {status})" if status is not None
                       else f"{base} is not reachable ({err})", level)]
    path, member, key, start_hint = spec
    url = (base[:-3] if p["type"] != "ollama" and base.endswith("/v1") else base) + path
    headers = _auth_headers(cfg, p)
    status, body, err = _http_get_json(url, timeout, headers)
    if status is None:
        return [_check(check, False, f"{base} is not reachable ({err}); {start_hint}", level)]
    items = body.get(member) if isinstance(body, dict) else None
    if status in (401, 403):
        return [_check(check, False, f"{url} refused the API key (HTTP {status}); check the secret "
                       f"{p['api_key_env'] or 'ANTHROPIC_API_KEY'}", level)]
    if status != 200 or not isinstance(items, list):
        what = {"ollama": "Ollama", "claude": "the Anthropic API"}.get(p["type"], "an OpenAI-compatible API")
        return [_check(check, False, f"{base} answers, but GET {path} gave HTTP {status}"
                       + ("" if status != 200 else " without a model list") + f": it is not {what} "
                       f"at this base_url (check [providers.{name}] base_url and type)", level)]
    offered = [str(m.get(key)) for m in items if isinstance(m, dict) and m.get(key)]
    version = ""
    if p["type"] == "ollama":
        vstatus, vbody, _ = _http_get_json(base + "/api/version", timeout)
        if vstatus == 200 and isinstance(vbody, dict) and vbody.get("version"):
            version = f" (Ollama {vbody['version']})"
    listing = ", ".join(offered[:12]) + (f" and {len(offered) - 12} more" if len(offered) > 12 else "")
    out = [_check(check, True, f"{base} speaks its API{version}: GET {path} lists "
                  f"{len(offered)} model(s){': ' + listing if offered else ''}")]
    out += _model_checks(cfg, name, p, offered, level)
    return out


def _same_model(a: str, b: str) -> bool:
    return a.removesuffix(":latest") == b.removesuffix(":latest")  # Ollama's implicit tag


def _model_checks(cfg: dict, name: str, p: dict, offered: list[str], level: str) -> list[dict]:
    """The models the config names for this provider against those it offers."""
    wanted: list[tuple[str, str]] = []  # (model, where the config names it)
    if p["model"]:
        wanted.append((p["model"], f"[providers.{name}] model"))
    elif p["type"] == "ollama":
        for tier, t in cfg["models"]["tiers"].items():
            if t["enabled"] and t["model"]:
                wanted.append((t["model"], f"[models.tiers.{tier}]"))
        wanted.append((cfg["models"]["local_model"], "[models] local_model"))
    if cfg["models"]["conductor_provider"] == name and cfg["models"]["conductor_model"]:
        wanted.append((cfg["models"]["conductor_model"], "[models] conductor_model"))
    missing, seen = [], set()
    for model, where in wanted:
        if model in seen or any(_same_model(model, o) for o in offered):
            seen.add(model)
            continue
        seen.add(model)
        missing.append(f"{model} ({where})")
    if not missing:
        return [_check(f"provider_models:{name}", True, "every model the config names is offered")] if wanted else []
    # Ollama refuses a model it does not have; llama.cpp serves its one model under
    # any name, and cloud lists can lag behind aliases: a warning there.
    strict = p["type"] == "ollama" and bool(p["model"])
    fix = ("`ollama pull MODEL`" if p["type"] == "ollama" else "load it on the server") + " or fix the name"
    return [_check(f"provider_models:{name}", False, f"not offered by {name}: {', '.join(missing)}; "
                   f"offered: {', '.join(offered) or '(none)'}; {fix}", level if strict else "warn")]


def _auth_headers(cfg: dict, p: dict) -> dict:
    from fleet.secret_file import get_secret

    if p["type"] == "claude":
        key = get_secret(cfg, p["api_key_env"] or "ANTHROPIC_API_KEY")
        return {"x-api-key": key, "anthropic-version": "2023-06-01"} if key else {}
    key = get_secret(cfg, p["api_key_env"]) if p["api_key_env"] else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def _is_cloud(p: dict) -> bool:
    locality = p["locality"]
    if locality != "auto":
        return locality == "cloud"
    if p["type"] == "ollama":
        return False
    if p["type"] == "claude":
        return True
    from fleet.providers.base import is_loopback_or_private

    return not is_loopback_or_private(p["base_url"])


def check_secrets_mode(cfg: dict) -> dict | None:
    from fleet.secret_file import secrets_path

    path = secrets_path(cfg)
    if not path.exists() or os.name != "posix":
        return None
    mode = path.stat().st_mode & 0o777
    return _check("secrets_mode", not mode & 0o077, f"{path} has mode {mode:o}"
                  + ("" if not mode & 0o077 else f"; run `chmod 600 {path}`"), level="warn")


def check_schedules(cfg: dict) -> list[dict]:
    """Each [schedule.NAME] names an installed skill with a valid payload
    (fail) that some configured role claims (warn: its runs would wait)."""
    from fleet.config import unclaimable_reason
    from fleet.schedule import ScheduleError, check_skills, parse_schedules

    schedules = parse_schedules(cfg)
    if not schedules:
        return []
    try:
        check_skills(cfg)
    except ScheduleError as exc:
        return [_check("schedules", False, str(exc))]
    out = [_check("schedules", True, f"{len(schedules)} schedule(s): "
                  + ", ".join(f"{s.name} ({s.describe()})" for s in schedules.values()))]
    for sched in schedules.values():
        why = unclaimable_reason(cfg, sched.skill)
        if why:
            out.append(_check("schedules", False, f"[schedule.{sched.name}]: {why}", level="warn"))
    return out


def check_notify(cfg: dict) -> list[dict]:
    """Each [notify.NAME] target and the heartbeat have their URL secret set
    (warn: alerts would not reach that target)."""
    from fleet.notify import parse_targets
    from fleet.secret_file import get_secret

    out = []
    wanted = [(f"[notify.{t.name}]", t.url_secret) for t in parse_targets(cfg).values() if t.enabled]
    if cfg["notify"]["heartbeat_url_secret"]:
        wanted.append(("[notify] heartbeat_url_secret", cfg["notify"]["heartbeat_url_secret"]))
    for where, key in wanted:
        try:
            present = bool(get_secret(cfg, key))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            present, key = False, f"{key} ({exc})"
        out.append(_check("notify", present, f"{where}: secret {key} is set" if present else
                          f"{where}: secret {key} is not set: `lead_client.py secret set {key} -`", level="warn"))
    return out


def run_preflight(home: str | None = None, *, warn_only: bool = False) -> dict[str, Any]:
    """Every check; `ok` is False when any check at level 'fail' failed.
    With warn_only, provider failures are downgraded to warnings."""
    started = time.monotonic()
    cfg, checks = check_config(home)
    if cfg is not None:
        checks += check_store(cfg)
        checks.append(check_disk(cfg))
        checks.append(check_writable_dir("logs", cfg["paths"]["logs"]))
        checks.append(check_writable_dir("backups", cfg["paths"]["backups"]))
        for extra in (check_dashboard(cfg), check_secrets_mode(cfg)):
            if extra is not None:
                checks.append(extra)
        checks += check_providers(cfg, level="warn" if warn_only else "fail")
        checks += check_schedules(cfg) + check_notify(cfg)
    failed = [c for c in checks if c["level"] == "fail"]
    return {"ok": not failed, "failed": len(failed), "warnings": sum(1 for c in checks if c["level"] == "warn"),
            "checks": checks, "elapsed_s": round(time.monotonic() - started, 3)}
