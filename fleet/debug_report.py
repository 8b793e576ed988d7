"""Debug reports: one snapshot of a fleet for whoever has to fix it, written to
reports/debug/<timestamp>.json (and a readable .md) in the fleet home and
recorded in the store, where its resolution is tracked (open -> resolved).
One function, `generate_debug_report`, serves the CLI (`report-issue`), the
dashboard (`POST /api/debug-report`) and the launcher. Every text in a report
passes the shared redactor (fleet.redact): no secret value, from the
environment, the secrets file, the config or a log line, is written.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import types
from pathlib import Path
from typing import Any

from fleet.atomic import atomic_write_text
from fleet.redact import Redactor, redact_config

LOG_LINES = 50
FAILED_TASKS = 20
REPORT_DIR = os.path.join("reports", "debug")


def report_dir(cfg: dict) -> Path:
    return Path(cfg["home"]) / REPORT_DIR


def _versions(store) -> dict:
    import fleet

    try:
        stats = store.stats()
        store_version = stats.get("sqlite_version") or stats.get("server_version")
        store_name = f"{'SQLite' if store.backend == 'sqlite' else 'PostgreSQL'} {store_version}"
    except Exception as exc:  # noqa: BLE001 - the rest of the versions still count
        stats, store_name = {}, f"unknown: {exc}"
    return {
        "fleet": fleet.__version__,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "store": store_name,
        "store_schema": stats.get("schema_version"),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


def _status(cfg: dict, store) -> dict:
    from fleet.cli.common import supervisor_pid
    from fleet.cli.fleet_control import collect_status

    shim = types.SimpleNamespace(cfg=cfg, store=store, supervisor_pid=lambda: supervisor_pid(cfg))
    return collect_status(shim)


def _logs(cfg: dict) -> dict[str, list[str]]:
    from fleet.logs import tail_lines

    folder = cfg["paths"]["logs"]
    out: dict[str, list[str]] = {}
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".log"))
    except OSError:
        return out
    for name in names:
        try:
            out[name] = tail_lines(os.path.join(folder, name), LOG_LINES)
        except OSError as exc:
            out[name] = [f"(unreadable: {exc.strerror})"]
    return out


def _failed_tasks(store) -> list[dict]:
    page = store.list_tasks(status="FAILED", limit=FAILED_TASKS)
    return [{"id": t.id, "skill": t.skill, "attempts": t.attempts, "worker": t.worker,
             "finished_at": t.finished_at, "error_reason": t.error_reason, "error": t.error} for t in page.items]


def _section(what: str, fn) -> Any:
    """A section's value, or what went wrong making it: a report is most
    needed when parts of the fleet are broken, so one part failing must not
    lose the rest."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recorded in the report instead
        return {"error": f"could not collect {what}: {type(exc).__name__}: {exc}"}


class _NoStore:
    """Stands in for a store that could not be opened: every use raises,
    saying why, so each section that needs the store reports it."""

    backend = "unavailable"

    def __init__(self, why: str | None):
        self.why = why or "unknown error"

    def __getattr__(self, name: str):
        def unavailable(*_args, **_kwargs):
            raise RuntimeError(f"the store could not be opened ({self.why})")

        return unavailable


def _clean(value: Any, redactor: Redactor, home_dir: str) -> Any:
    """Every text in `value` scrubbed of secrets, and the user's home shown as ~."""
    if isinstance(value, dict):
        return {str(k): _clean(v, redactor, home_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, redactor, home_dir) for v in value]
    if isinstance(value, str):
        text = redactor.scrub_all(value)
        return text.replace(home_dir, "~") if home_dir and home_dir != "/" else text
    return value


def build_report(cfg: dict, store, *, description: str | None = None, steps: str | None = None,
                 include_logs: bool = True, store_error: str | None = None) -> dict:
    """The report as a dict, already redacted (nothing is written). `store`
    None: the store could not be opened (`store_error` says why); the
    sections that need it say so and the others are still collected."""
    from fleet.hw_state import read_hw_state
    from fleet.preflight import run_preflight

    redactor = Redactor(cfg)
    if store is None:  # the store could not be opened: what needs it says so, the rest is still collected
        store = _NoStore(store_error)
    report = {
        "generated_at": time.time(),
        "description": description,
        "reproduction_steps": steps,
        "versions": _section("versions", lambda: _versions(store)),
        "config": _section("the config", lambda: redact_config(cfg, redactor)),
        "status": _section("status", lambda: _status(cfg, store)),
        "alerts": _section("alerts", lambda: store.list_alerts(active_only=True, limit=100)),
        "hw_state": _section("hw_state", lambda: read_hw_state(cfg)),
        "logs": _section("logs", lambda: _logs(cfg)) if include_logs else "left out (--no-logs)",
        "failed_tasks": _section("failed tasks", lambda: _failed_tasks(store)),
        "preflight": _section("preflight", lambda: run_preflight(cfg["home"], warn_only=True)),
    }
    return _clean(report, redactor, os.path.expanduser("~"))


def render_markdown(report: dict, report_id: int | None = None) -> str:
    """The readable twin of a report's JSON."""
    ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(report["generated_at"]))
    lines = [f"# Fleet debug report{f' {report_id}' if report_id is not None else ''}", "", f"Generated {ts}.", ""]
    if report.get("description"):
        lines += ["## Description", "", report["description"], ""]
    if report.get("reproduction_steps"):
        lines += ["## Steps to reproduce", "", report["reproduction_steps"], ""]
    versions = report["versions"]
    lines += ["## Versions", ""] + [f"- {k}: {v}" for k, v in versions.items()] + [""]
    status = report["status"]
    if "state" in status:
        tasks = status.get("tasks", {})
        sup = status["supervisor"]
        lines += ["## Status", "", f"- state: {status['state']}",
                  f"- supervisor: {'running (pid %s)' % sup['pid'] if sup['running'] else 'not running'}",
                  "- tasks: " + ", ".join(f"{k} {v}" for k, v in tasks.items()),
                  f"- active alerts: {status.get('active_alerts')}", ""]
    else:
        lines += ["## Status", "", status.get("error", ""), ""]
    alerts = report["alerts"]
    lines += ["## Alerts", ""]
    if isinstance(alerts, list):
        lines += [f"- [{a['severity']}] {a['component']}: {a['message']} (x{a['occurrences']})" for a in alerts] \
            or ["- none active"]
    else:
        lines.append(str(alerts.get("error", alerts)))
    lines.append("")
    failed = report["failed_tasks"]
    lines += ["## Last failed tasks", ""]
    if isinstance(failed, list):
        lines += [f"- task {t['id']} ({t['skill']}, {t['attempts']} attempts): {t['error']}" for t in failed] \
            or ["- none"]
    else:
        lines.append(str(failed.get("error", failed)))
    lines.append("")
    pre = report["preflight"]
    if "checks" in pre:
        lines += ["## Preflight", ""] + [f"- [{c['level']}] {c['name']}: {c['detail']}" for c in pre["checks"]] + [""]
    hw = report["hw_state"]
    lines += ["## Hardware state", "", "```json", json.dumps(hw, indent=2, default=str)[:4000], "```", ""]
    logs = report["logs"]
    lines += ["## Logs (last lines)", ""]
    if isinstance(logs, dict) and "error" not in logs:
        for name, tail in logs.items():
            lines += [f"### {name}", "", "```", *tail, "```", ""]
    else:
        lines += [str(logs), ""]
    lines += ["## Config (secrets redacted)", "", "```json", json.dumps(report["config"], indent=2, default=str),
              "```", ""]
    return "\n".join(lines)


def _free_stem(folder: Path, ts: float) -> str:
    stem = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))
    candidate, n = stem, 1
    while (folder / f"{candidate}.json").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def generate_debug_report(cfg: dict, store, *, description: str | None = None, steps: str | None = None,
                          include_logs: bool = True, by: str = "operator", store_error: str | None = None) -> dict:
    """Build a report, write reports/debug/<timestamp>.json and .md (0600: a
    report describes the machine), record it in the store (status open) and
    return {"id", "json_path", "md_path", "status", "report"}. With `store`
    None (it could not be opened: a report is most needed then) the report is
    still written, and not recorded: id None, status "unrecorded"."""
    report = build_report(cfg, store, description=description, steps=steps, include_logs=include_logs,
                          store_error=store_error)
    folder = report_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(folder, report["generated_at"])
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n", mode=0o600)
    record = {"id": None, "status": "unrecorded"}
    if store is not None:
        record = store.record_debug_report(os.path.join(REPORT_DIR, f"{stem}.json"),
                                           description=(report["description"] or "")[:2000] or None, by=by)
    atomic_write_text(md_path, render_markdown(report, record["id"]), mode=0o600)
    return {"id": record["id"], "json_path": str(json_path), "md_path": str(md_path), "status": record["status"],
            "report": report}
