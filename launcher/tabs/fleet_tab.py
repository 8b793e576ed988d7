"""The Fleet tab: agents (name, role, host, state, heartbeat age, current
task, restarts) with per-agent restart / pause / resume, the managed services
(dashboard, hw_supervisor), and alerts with acknowledge.
"""

from __future__ import annotations

from tkinter import ttk

from fleet.cli.common import fmt_age

from ..widgets import Table
from .base import Tab

SERVICE_ROLES = ("dashboard", "hw_supervisor")


class FleetTab(Tab):
    NAME = "fleet"
    LABEL = "Fleet"

    def build_tab(self, parent) -> None:
        parent.columnconfigure(0, weight=3)
        parent.columnconfigure(1, weight=2)
        parent.rowconfigure(1, weight=3)
        parent.rowconfigure(4, weight=2)
        head = ttk.Frame(parent)
        head.grid(row=0, column=0, columnspan=2, sticky="ew")
        ttk.Label(head, text="Agents", style="Section.TLabel").pack(side="left")
        self.agents_note = ttk.Label(head, text="", style="Muted.TLabel")
        self.agents_note.pack(side="left", padx=10)
        self.agents = Table(parent, [("name", "Name", 120), ("role", "Role", 100), ("host", "Host", 110),
                                     ("state", "State", 110), ("hb", "Heartbeat", 90), ("task", "Task", 70),
                                     ("restarts", "Restarts (1 h)", 110), ("pid", "PID", 70)], height=9)
        self.agents.grid(row=1, column=0, columnspan=2, sticky="nsew", pady=(4, 4))
        bar = ttk.Frame(parent)
        bar.grid(row=2, column=0, columnspan=2, sticky="w", pady=(0, 10))
        self.agent_buttons = []
        for text, kind in (("Restart agent", "restart"), ("Pause agent", "pause"), ("Resume agent", "resume")):
            b = ttk.Button(bar, text=text, command=lambda k=kind: self.act(k))
            b.pack(side="left", padx=(0, 6))
            self.agent_buttons.append(b)
        ttk.Button(bar, text="Open dashboard", command=self.app.open_dashboard).pack(side="left", padx=(18, 0))
        self.hint = ttk.Label(bar, text="select an agent", style="Muted.TLabel")
        self.hint.pack(side="left", padx=12)
        ttk.Label(parent, text="Services", style="Section.TLabel").grid(row=3, column=0, sticky="w")
        ttk.Label(parent, text="Alerts", style="Section.TLabel").grid(row=3, column=1, sticky="w", padx=(10, 0))
        self.services = Table(parent, [("name", "Service", 120), ("state", "State", 100), ("since", "Since", 80),
                                       ("pid", "PID", 70), ("detail", "Detail", 170)], height=4)
        self.services.grid(row=4, column=0, sticky="nsew", pady=(4, 0))
        right = ttk.Frame(parent)
        right.grid(row=4, column=1, sticky="nsew", padx=(10, 0), pady=(4, 0))
        right.rowconfigure(0, weight=1)
        right.columnconfigure(0, weight=1)
        self.alerts = Table(right, [("id", "#", 36), ("sev", "Severity", 70), ("comp", "Component", 100),
                                    ("msg", "Message", 140), ("n", "Times", 50)], height=4)
        self.alerts.grid(row=0, column=0, sticky="nsew")
        ab = ttk.Frame(right)
        ab.grid(row=1, column=0, sticky="w", pady=(4, 0))
        self.ack_button = ttk.Button(ab, text="Acknowledge", command=self.ack)
        self.ack_button.pack(side="left")
        self.app.status_listeners.append(self.show_status)

    def on_refresh(self) -> None:
        if self.app.status_doc is not None:
            self.show_status(self.app.status_doc)
        self.run("alerts", self.client.alerts, self.show_alerts)
        self.run("services", self.client.services, self.show_services)

    def show_status(self, doc: dict) -> None:
        if "agents" not in doc:
            return
        workers = []
        for a in doc["agents"]:
            if a["role"] in SERVICE_ROLES or a["name"] == "supervisor":
                continue
            state = f"lost (was {a['status']})" if a["stale"] else a["status"]
            hb = fmt_age(a["heartbeat_age_s"]) + " ago" if a["heartbeat_age_s"] is not None else ""
            workers.append((a["name"], [a["name"], a["role"], a["host"], state, hb, a["current_task"] or "",
                                        a.get("restarts_1h", 0), a["pid"]], "lost" if a["stale"] else a["status"]))
        self.agents.set_rows(workers)
        running = doc["supervisor"]["running"]
        self.agents_note.configure(text=(f"{len(workers)} worker(s)" if workers else "no workers registered")
                                   + ("" if running else " · the fleet is stopped: Start in the sidebar"))

    def show_services(self, rows: list[dict]) -> None:
        import time

        now = time.time()
        tags = {"running": "running", "off": "stale"}
        self.services.set_rows([(r["name"], [r["name"], r["state"], fmt_age(now - r["since"]) + " ago"
                                             if r["since"] else "", r["pid"] or "", r["detail"]],
                                 tags.get(r["state"], "stopped")) for r in rows])

    def show_alerts(self, alerts: list[dict]) -> None:
        self.alerts.set_rows([(str(a["id"]), [a["id"], a["severity"], a["component"], a["message"],
                                              a["occurrences"]],
                               {"critical": "stopped", "warning": "degraded"}.get(a["severity"]))
                              for a in alerts])

    def act(self, kind: str) -> None:
        name = self.agents.selected()
        if name is None:
            self.hint.configure(text="select an agent first")
            return
        self.app.control(kind, name)

    def ack(self) -> None:
        sel = self.alerts.selected()
        if sel is None:
            return
        self.run("ack", lambda: self.client.ack_alert(int(sel)),
                 lambda a: (self.app.set_message(f"alert {a['id']} acknowledged"), self.on_refresh()))
