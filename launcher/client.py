"""What the launcher asks of the fleet, in one place: each method is a call
into the store contract or into the CLI's own functions (fleet/cli/), run on a
background thread. No SQL here, no signals, and no state the fleet lacks.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from fleet.cli import fleet_control, tasks as cli_tasks
from fleet.cli.common import Ctx
from fleet.hosts import qualified
from fleet.cli.logs_alerts import available_logs

EXIT_ACTIONS = ("child_exit",)  # the events the dashboard counts as restarts (fleet/web/api_status.py)
DECISIONS = ("approve", "reject", "more_info", "feedback")  # as the dashboard's /api/tasks/<id>/respond
ACTOR = "launcher"  # who the store (and the audit trail) records for what the launcher does


class FleetClient:
    """One fleet home, opened lazily; `reload()` re-reads fleet.toml."""

    def __init__(self, home: str | None = None):
        from fleet.config import load_config

        self._cfg = load_config(home)  # a file read only: the store opens on a background thread
        self.home = self._cfg["home"]
        self._lock = threading.Lock()
        self._ctx: Ctx | None = None

    @property
    def ctx(self) -> Ctx:
        """The CLI's context (config and store); opened on first use, on the calling (background) thread."""
        with self._lock:
            if self._ctx is None:
                ctx = Ctx(argparse.Namespace(home=self.home, json=True, timeout=None, wait=False), actor=ACTOR)
                ctx.store  # noqa: B018 - open it now, under the lock, not in two threads at once
                self._ctx = ctx
            return self._ctx

    @property
    def cfg(self) -> dict:
        return self._cfg

    def reload(self) -> dict:
        """Re-read fleet.toml (after Settings saved it); the store reopens on next use."""
        from fleet.config import load_config

        self._cfg = load_config(self.home)
        with self._lock:
            old, self._ctx = self._ctx, None
        if old is not None:
            old.close()
        return self._cfg

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                self._ctx.close()
                self._ctx = None

    # -- fleet --------------------------------------------------------------
    def status(self) -> dict:
        """The CLI's `status --json` document, plus restarts in the last hour per agent."""
        doc = fleet_control.collect_status(self.ctx)
        tally = self.ctx.store.event_tally(EXIT_ACTIONS, time.time() - 3600)
        for a in doc["agents"]:
            a["restarts_1h"] = sum(n for (agent, _), n in tally.items() if agent == a["name"])
        return doc

    def services(self, doc: dict | None = None) -> list[dict]:
        """The managed services ([supervisor] services): from the supervisor's
        last spawn / exit event of each and its agents row when it has one:
        [{name, state, pid, since, heartbeat_age_s, detail}]."""
        doc = doc if doc is not None else fleet_control.collect_status(self.ctx)
        last = self.ctx.store.last_event_per_agent(("spawn", "child_exit"))
        rows = {a["name"]: a for a in doc["agents"]}
        out = []
        for svc in self.cfg["supervisor"]["services"]:
            base = svc.rsplit(".", 1)[-1]
            name = qualified(self.cfg, base)  # name@host where several hosts share the store
            if base == "dashboard" and not self.cfg["dashboard"]["enabled"]:
                out.append({"name": name, "state": "off", "pid": None, "since": None, "heartbeat_age_s": None,
                            "detail": "[dashboard] enabled = false"})
                continue
            ev, row = last.get(name), rows.get(name) or {}
            detail = ev.get("detail") or {} if ev else {}
            if not doc["supervisor"]["running"]:
                state = "stopped"
            elif ev is None:
                state = "not started"
            elif ev["action"] == "spawn":
                state = "running"
            else:
                state = "exited" + (f" ({detail.get('intent')})" if detail.get("intent") else "")
            extra = row.get("detail") or ""
            out.append({"name": name, "state": state, "pid": detail.get("pid") if state == "running" else None,
                        "since": ev["ts"] if ev else None, "heartbeat_age_s": row.get("heartbeat_age_s"),
                        "detail": extra if isinstance(extra, str) else ", ".join(f"{k} {v}" for k, v in extra.items())})
        return out

    def record_config_edit(self, keys: list[str]) -> None:
        """fleet.toml was saved from Settings: a config_edit event names the keys (never values)."""
        from fleet.config_drift import config_hash

        self.ctx.store.record_event(ACTOR, "config_edit", detail={"keys": keys, "to": config_hash(self.cfg),
                                                                  "file": "fleet.toml"})

    def report_issue(self, description: str | None = None, steps: str | None = None) -> dict:
        """A debug report, as `lead_client report-issue` writes it (the same
        function): reports/debug/<timestamp>.json and .md, recorded as open."""
        from fleet.debug_report import generate_debug_report

        try:
            store, why = self.ctx.store, None
        except SystemExit as exc:  # the store cannot be opened: a report is most needed then
            store, why = None, f"the store could not be opened (exit {exc.code})"
        return generate_debug_report(self.cfg, store, description=description, steps=steps, by=ACTOR,
                                     store_error=why)

    def alerts(self, include_acked: bool = False) -> list[dict]:
        return self.ctx.store.list_alerts(active_only=not include_acked, limit=200)

    def ack_alert(self, alert_id: int) -> dict:
        return self.ctx.store.ack_alert(alert_id, by=ACTOR)

    def control(self, kind: str, target: str | None = None, timeout: float = 10.0) -> str:
        """start | stop | restart (through the supervisor, as `lead_client`
        start/stop/restart), pause | resume (fleet or one worker) and drain."""
        ctx = self.ctx
        if kind in ("start", "stop"):
            what = f"{kind} {target or 'all roles'}"
            res = fleet_control.request_supervisor(ctx, {"type": kind, "role": target}, what, timeout)
        elif kind == "restart":
            res = fleet_control.request_supervisor(ctx, {"type": "restart", "target": target},
                                                   f"restart {target}", timeout)
        elif kind in ("pause", "resume"):
            return fleet_control.set_paused(ctx, kind, target)[1]
        elif kind == "drain":
            res = fleet_control.drain_fleet(ctx, timeout)
            return (f"drained in {res['elapsed_s']:.1f} s: nothing runs and the fleet is paused" if res["drained"]
                    else f"{res['running']} task(s) still running after {timeout:g} s; the fleet stays paused")
        else:
            raise ValueError(f"unknown control {kind!r}")
        if not res["acknowledged"]:
            return f"{what if kind != 'restart' else 'restart ' + str(target)}: the supervisor did not take it " \
                   f"within {timeout:g} s; see logs/supervisor.log"
        return f"the supervisor (pid {res['supervisor_pid']}) took the request: {kind} {target or 'all roles'}"

    def supervisor_pid(self) -> int | None:
        return self.ctx.supervisor_pid()

    # -- tasks --------------------------------------------------------------
    def list_tasks(self, *, status=None, skill=None, agent=None, text=None, limit=50, offset=0):
        return self.ctx.store.list_tasks(status=status or None, skill=skill or None, agent=agent or None,
                                         text=text or None, limit=limit, offset=offset)

    def task_detail(self, task_id: int) -> dict:
        store = self.ctx.store
        t = store.require(task_id)
        return {"task": t, "attempts": store.attempts(task_id), "history": store.task_history(task_id)}

    def retry(self, task_id: int):
        return self.ctx.store.retry(task_id, by=ACTOR)

    def cancel(self, task_id: int):
        return self.ctx.store.cancel(task_id, by=ACTOR)

    def skills(self) -> dict:
        from fleet.skill_registry import discover

        return discover(self.cfg)

    def dispatch(self, skill: str, payload: dict, priority: int = 5, assigned_to: str | None = None):
        """As `lead_client dispatch`: checked against the registry, then queued. (Task, warning)."""
        return cli_tasks.enqueue_checked(self.ctx, skill, payload, priority, assigned_to or None)

    def instruct(self, text: str, priority: int | None = None):
        """As `lead_client task "..."`: the intent parser (or raw JSON), then queued.
        Returns (Task, warning, spec)."""
        spec = cli_tasks.task_from_instruction(self.ctx, text, priority)
        task, warning = cli_tasks.enqueue_checked(self.ctx, spec["skill"], spec["payload"], spec["priority"],
                                                  spec["assigned_to"], spec["options"])
        return task, warning, spec

    # -- fleet comm ---------------------------------------------------------
    def waiting_human(self, limit: int = 100):
        return self.ctx.store.list_tasks(status="WAITING_HUMAN", limit=limit).items

    def respond(self, task_id: int, decision: str, text: str = ""):
        """Answer a WAITING_HUMAN task with the dashboard's shapes: approve,
        reject, more_info, feedback as {choice, text} (more_info also queues a
        research_loop task on the text, as the manual says); "discuss" queues a
        code_discuss task about it (when that skill exists) and answers feedback."""
        store = self.ctx.store
        if decision == "discuss":
            t = store.require(task_id)
            if "code_discuss" not in self.skills():
                raise ValueError("discussion needs the code_discuss skill, which this fleet does not have")
            topic = text.strip() or f"task {task_id} ({t.skill}): {(t.question or {}).get('question', '')}"
            payload = {"thread": f"task-{task_id}", "message": topic, "author": ACTOR}
            discuss, _ = cli_tasks.enqueue_checked(self.ctx, "code_discuss", payload, 5)
            answer = {"choice": "feedback", "text": f"opened discussion task {discuss.id}: {topic}"}
            return store.answer(task_id, answer, by=ACTOR)
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)} or discuss")
        if decision in ("more_info", "feedback") and not text.strip():
            raise ValueError(f"a {decision.replace('_', ' ')} response needs text saying what you want")
        if decision == "more_info":  # as the dashboard: a research_loop task on the text, linked to the task
            from fleet.skills._hitl import answer_more_info

            return answer_more_info(store, self.cfg, task_id, text, by=ACTOR)[0]
        return store.answer(task_id, {"choice": decision, "text": text}, by=ACTOR)

    def answer_option(self, task_id: int, option: str):
        """Answer with one of the question's own options, as `lead_client hitl respond`."""
        t = self.ctx.store.require(task_id)
        options = [str(o) for o in ((t.question or {}).get("options") or [])] if isinstance(t.question, dict) else []
        if options and option not in options:
            raise ValueError(f"task {task_id} asks to choose one of: {', '.join(options)}")
        return self.ctx.store.answer(task_id, option, by=ACTOR)

    def chat(self, prompt: str) -> dict:
        """One message to the configured model chain through call_model; the
        routing message (what to start or set) when no model is reachable."""
        from fleet.skills import _models

        try:
            res = _models.call_model(prompt, self.cfg, skill="launcher_chat")
        except _models.NoProviderAvailable as exc:
            return {"ok": False, "text": str(exc)}
        except Exception as exc:  # noqa: BLE001 - any model failure is shown as a reply
            return {"ok": False, "text": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, "text": res.text, "provider": getattr(res, "provider", None),
                "model": getattr(res, "model", None)}

    # -- hardware, usage, logs ---------------------------------------------
    def hw_state(self) -> dict:
        from fleet.hw_state import read_hw_state

        return read_hw_state(self.cfg)

    def usage_by_day(self, days: int = 30, now: float | None = None) -> list[dict]:
        """Cost and tokens per UTC day, oldest first: {day, cost_usd, tokens, calls}."""
        now = time.time() if now is None else now
        today = now - (now % 86400)
        out = []
        for i in range(days - 1, -1, -1):
            start = today - i * 86400
            rows = self.ctx.store.usage_summary(start, start + 86400, group_by="skill")
            out.append({"day": time.strftime("%m-%d", time.gmtime(start)),
                        "cost_usd": sum(r.get("cost_usd") or 0 for r in rows),
                        "tokens": sum((r.get("input_tokens") or 0) + (r.get("output_tokens") or 0) for r in rows),
                        "calls": sum(r.get("calls") or 0 for r in rows)})
        return out

    def budgets(self) -> list[dict]:
        from fleet import costs

        return costs.budget_status(self.cfg, self.ctx.store)

    def log_names(self) -> list[str]:
        return available_logs(self.cfg["paths"]["logs"])

    def log_path(self, name: str) -> str:
        from fleet.logs import log_path

        if os.sep in name or name.startswith("."):
            raise ValueError(f"{name!r} is not a log name")
        return log_path(self.cfg, name)

