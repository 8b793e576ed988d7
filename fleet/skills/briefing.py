"""briefing skill: the morning briefing. For the last 24 h (or `hours`) it
reports tasks done and failed by skill with the top errors, cost against
budgets, alerts raised and still open, tasks waiting for a person, uptime and
capacity utilisation (fleet.report) and the hosts seen; writes it to
knowledge/briefings/<YYYY-MM-DD>.md and sends a digest to the [notify] targets
that take briefings. Needs no model; when one is reachable it adds a
three-sentence summary, marked as model-written.
"""

from __future__ import annotations

import collections
import datetime as _dt
import time

DESCRIPTION = ("Morning briefing: tasks done/failed by skill with top errors, cost against budgets, alerts, "
               "pending approvals, uptime and capacity, hosts seen, for the last 24 h; written to "
               "knowledge/briefings/<date>.md and sent to the notify targets. No model needed.")
REQUIRES_NETWORK = False  # notify targets are optional; a failed send is reported, not fatal
REQUIRES_MODEL = False
IDEMPOTENT = True
TIMEOUT_S = 300
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "hours": {"type": "number", "minimum": 1, "maximum": 168, "description": "window (default 24)"},
        "summary": {"type": "boolean", "description": "ask a model for a three-sentence summary (default true)"},
        "send": {"type": "boolean", "description": "send the digest to the notify targets (default true)"},
    },
    "additionalProperties": False,
}
TOP_ERRORS = 5
MAX_TASKS = 5000  # most finished tasks read for one briefing


def gather(config: dict, store, *, now: float, hours: float = 24.0) -> dict:
    """The briefing's figures as a dict (no model, no network)."""
    from fleet import report
    from fleet.costs import budget_status
    from fleet.hosts import host_summary

    since = now - hours * 3600
    by_skill: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"done": 0, "failed": 0})
    errors: collections.Counter = collections.Counter()
    offset = 0
    while offset < MAX_TASKS:  # finished in the window (created up to a week before it)
        page = store.list_tasks(status=["DONE", "FAILED"], since=since - 7 * 86400, limit=1000, offset=offset)
        for t in page.items:
            if t.finished_at is None or not since <= t.finished_at <= now:
                continue
            by_skill[t.skill]["done" if t.status == "DONE" else "failed"] += 1
            if t.status == "FAILED":
                errors[(t.skill, (t.error or "(no error text)").strip().splitlines()[0][:200])] += 1
        offset += len(page.items)
        if len(page.items) < 1000:
            break
    usage = store.usage_totals(since)
    raised = store.events(action="alert", since=since, limit=1000)
    open_alerts = store.list_alerts(active_only=True, limit=100)
    waiting = store.list_tasks(status="WAITING_HUMAN", limit=100)
    rep = report.build_report(config, store, now=now, days=1)
    agents = [dict(a, heartbeat_age_s=(now - a["last_heartbeat"]) if a.get("last_heartbeat") else None)
              for a in store.list_agents()]
    limit = float(config["supervisor"]["heartbeat_timeout_s"])
    hosts = [h for h in host_summary(agents, config["fleet"]["host"], limit)
             if h["last_seen_age_s"] is not None and h["last_seen_age_s"] <= hours * 3600]
    return {
        "fleet": config["fleet"]["name"], "since": since, "until": now, "hours": hours,
        "tasks": {k: dict(v) for k, v in sorted(by_skill.items())},
        "done": sum(v["done"] for v in by_skill.values()), "failed": sum(v["failed"] for v in by_skill.values()),
        "top_errors": [{"skill": s, "error": e, "count": n} for (s, e), n in errors.most_common(TOP_ERRORS)],
        "cost": {"spent_usd": round(usage.get("spent_usd", 0.0), 4), "calls": usage.get("calls", 0)},
        "budgets": budget_status(config, store, now=now),
        "alerts_raised": [{"id": (e.get("detail") or {}).get("id"), "severity": (e.get("detail") or {}).get("severity"),
                           "component": e.get("actor"), "message": (e.get("detail") or {}).get("message"),
                           "at": e["ts"]} for e in raised],
        "alerts_open": [{"id": a["id"], "severity": a["severity"], "component": a["component"],
                         "message": a["message"], "occurrences": a["occurrences"], "since": a["created_at"]}
                        for a in open_alerts],
        "waiting_human": [{"id": t.id, "skill": t.skill, "question": (t.question or {}).get("question")
                           if isinstance(t.question, dict) else t.question, "since": t.updated_at}
                          for t in waiting.items],
        "uptime_pct": rep["uptime_pct"]["day"], "capacity_utilisation_pct": rep["capacity_utilisation_pct"]["day"],
        "worker_restarts": rep["worker_restarts"]["day"], "first_sample_at": rep.get("first_sample_at"),
        "hosts": [{"host": h["host"], "state": h["state"], "agents": h["agents"], "running": h["running"],
                   "last_seen_age_s": h["last_seen_age_s"]} for h in hosts],
    }


def _ts(ts: float | None) -> str:
    return "-" if ts is None else _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value) -> str:
    return "no data" if value is None else f"{value:.1f} %"


def render_markdown(b: dict, summary: dict | None = None) -> str:
    lines = [f"# Morning briefing: fleet {b['fleet']}, {_dt.datetime.fromtimestamp(b['until'], _dt.UTC):%Y-%m-%d}",
             "", f"Window: the last {b['hours']:g} h, {_ts(b['since'])} to {_ts(b['until'])}.", ""]
    if summary:
        lines += ["## Summary (written by a model)", "",
                  f"> {summary['text'].strip()}", "",
                  f"_Model-written by {summary['model']} from the figures below; the figures are authoritative._",
                  ""]
    lines += ["## Tasks", "", f"{b['done']} done, {b['failed']} failed.", ""]
    if b["tasks"]:
        lines += ["| skill | done | failed |", "| --- | ---: | ---: |"]
        lines += [f"| {s} | {v['done']} | {v['failed']} |" for s, v in b["tasks"].items()]
        lines.append("")
    if b["top_errors"]:
        lines += ["Top errors:", ""]
        lines += [f"{i}. {e['skill']} ({e['count']}x): {e['error']}" for i, e in enumerate(b["top_errors"], 1)]
        lines.append("")
    lines += ["## Cost and budgets", "", f"Spent ${b['cost']['spent_usd']:.4f} over {b['cost']['calls']} model "
              "calls in the window.", ""]
    if b["budgets"]:
        lines += ["| budget | period | spent | limit | calls | used | state |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        lines += [f"| {x['budget']} | {x['period']} | ${x['spent_usd']:.4f} | "
                  f"{'$%.2f' % x['limit_usd'] if x['limit_usd'] else '-'} | {x['calls']}"
                  f"{' / %d' % x['max_calls'] if x['max_calls'] else ''} | {x['percent_used']:.1f} % | {x['state']} |"
                  for x in b["budgets"]]
    else:
        lines.append("No budgets are configured ([budgets] in fleet.toml).")
    lines += ["", "## Alerts", "", f"Raised in the window: {len(b['alerts_raised'])}. Still open: "
              f"{len(b['alerts_open'])}.", ""]
    lines += [f"- open, {a['severity']}: {a['component']}: {a['message']}"
              f"{' (x%d)' % a['occurrences'] if a['occurrences'] > 1 else ''}, since {_ts(a['since'])}"
              for a in b["alerts_open"]]
    open_ids = {a["id"] for a in b["alerts_open"]}
    lines += [f"- raised {_ts(a['at'])}, {a['severity']}: {a['component']}: {a['message']}"
              for a in b["alerts_raised"] if a["id"] not in open_ids]
    lines += ["", "## Waiting for a person", ""]
    lines += ([f"- task {w['id']} ({w['skill']}): {w['question'] or '(approval)'}, waiting since {_ts(w['since'])}"
               for w in b["waiting_human"]] or ["Nothing is waiting for a person."])
    lines += ["", "## Uptime and capacity", "",
              f"Uptime: {_pct(b['uptime_pct'])}. Capacity utilisation: {_pct(b['capacity_utilisation_pct'])}. "
              f"Worker restarts: {b['worker_restarts']}. (From `lead_client report`: time without a liveness "
              "sample counts as down"
              + (f"; the first sample is from {_ts(b['first_sample_at'])}" if (b.get("first_sample_at") or 0)
                 > b["since"] else "") + ".)", "", "## Hosts seen", ""]
    lines += ([f"- {h['host']}: {h['state']}, {h['running']}/{h['agents']} agents up" for h in b["hosts"]]
              or ["No host heartbeat in the window."])
    return "\n".join(lines) + "\n"


def digest(b: dict, path: str, summary: dict | None = None) -> str:
    """The short text sent to the notify targets."""
    parts = [f"Tasks: {b['done']} done, {b['failed']} failed"
             + (f" (top error: {b['top_errors'][0]['skill']}: {b['top_errors'][0]['error'][:120]})"
                if b["top_errors"] else "") + ".",
             f"Cost: ${b['cost']['spent_usd']:.2f} over {b['cost']['calls']} calls"
             + "".join(f"; budget {x['budget']} {x['percent_used']:.0f} % ({x['state']})" for x in b["budgets"]
                       if x["state"] != "ok") + ".",
             f"Alerts: {len(b['alerts_raised'])} raised, {len(b['alerts_open'])} open.",
             f"Waiting for a person: {len(b['waiting_human'])}.",
             f"Uptime {_pct(b['uptime_pct'])}, capacity utilisation {_pct(b['capacity_utilisation_pct'])}.",
             f"Hosts: {', '.join(h['host'] for h in b['hosts']) or 'none seen'}."]
    if summary:
        parts.insert(0, f"Summary (model-written): {summary['text'].strip()}")
    parts.append(f"Full briefing: {path}")
    return "\n".join(parts)


def _summary(config: dict, b: dict, log) -> tuple[dict | None, str | None]:
    """A three-sentence summary from a model, or (None, why not)."""
    import json

    from fleet.skills._llm import ModelOutputError, ModelUnavailable, ask_model
    from fleet.skills._models import BudgetExceeded

    figures = {k: b[k] for k in ("done", "failed", "tasks", "top_errors", "cost", "budgets", "uptime_pct",
                                 "capacity_utilisation_pct", "worker_restarts")}
    figures["alerts_open"] = [f"{a['severity']}: {a['message']}" for a in b["alerts_open"]]
    figures["waiting_human"] = len(b["waiting_human"])
    try:
        res = ask_model("Figures of an AI-agent fleet for the last day:\n" + json.dumps(figures, default=str)
                        + "\n\nWrite exactly three plain sentences for its operator: what went well, what "
                          "failed or needs attention, and what to do first. No lists, no headings.",
                        config, skill="briefing", max_tokens=200, temperature=0.2)
    except (ModelUnavailable, ModelOutputError, BudgetExceeded) as exc:
        log.info("briefing: no model summary: %s", exc)
        return None, str(exc)[:300]
    text = " ".join((res.text or "").split())
    if not text:
        return None, "the model returned no text"
    return {"text": text, "model": f"{res.provider}/{res.model}"}, None


def run(payload: dict, config: dict, log) -> dict:
    from fleet.atomic import atomic_write_text
    from fleet.db import shared_store
    from fleet.notify import Message, send_message

    from ._common import display_path, knowledge_path

    now = time.time()
    b = gather(config, shared_store(config), now=now, hours=float(payload.get("hours", 24)))
    summary, no_summary = (None, "not asked")
    if payload.get("summary", True):
        summary, no_summary = _summary(config, b, log)  # (offline: the routing layer allows local models only)
    path = knowledge_path(config, "briefings", f"{_dt.datetime.fromtimestamp(now, _dt.UTC):%Y-%m-%d}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_markdown(b, summary))
    shown = display_path(config, path)
    log.info("briefing written to %s", path)
    sent = {}
    if payload.get("send", True):
        title = f"Fleet {b['fleet']}: morning briefing"
        sent = send_message(config, Message("briefing", title, digest(b, shown, summary), "info", None, b["fleet"]),
                            event_filter=lambda t: t.briefings)
        for name, outcome in sent.items():
            (log.info if outcome == "sent" else log.warning)("briefing to %s: %s", name, outcome)
    return {"path": shown, "done": b["done"], "failed": b["failed"], "alerts_open": len(b["alerts_open"]),
            "waiting_human": len(b["waiting_human"]), "summary": bool(summary), "no_summary": no_summary if not
            summary else None, "sent": sent}
