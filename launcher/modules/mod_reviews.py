"""Bundled module: Reviews. The fleet's review tasks (code_review,
security_review, fma_review) with their state and findings, read from the
store through the same list call as `lead_client tasks --skill`.
"""

from __future__ import annotations

import json
from tkinter import ttk

from launcher.widgets import ScrolledText, Table

REVIEW_SKILLS = ("code_review", "security_review", "fma_review")


class Module:
    NAME = "reviews"
    LABEL = "Reviews"
    VERSION = "1.0"
    DEFAULT_ENABLED = True
    DEPENDS_ON = ["tasks"]
    DATA_SCHEMA = None

    def __init__(self, app):
        self.app = app
        self.tasks: dict[str, object] = {}

    def build_tab(self, parent) -> None:
        parent.columnconfigure(0, weight=1)
        parent.rowconfigure(1, weight=3)
        parent.rowconfigure(2, weight=2)
        self.summary = ttk.Label(parent, text="", style="Section.TLabel")
        self.summary.grid(row=0, column=0, sticky="w")
        self.table = Table(parent, [("id", "Task", 60), ("skill", "Skill", 130), ("status", "Status", 110),
                                    ("target", "Target", 300), ("verdict", "Verdict / error", 300)], height=10)
        self.table.grid(row=1, column=0, sticky="nsew", pady=(4, 6))
        self.table.bind_select(self.show_one)
        self.view = ScrolledText(parent, height=8)
        self.view.grid(row=2, column=0, sticky="nsew")
        self.view.set("Select a review to read it.")

    def on_refresh(self) -> None:
        client = self.app.client

        def fetch():
            out = []
            for skill in REVIEW_SKILLS:
                out += client.list_tasks(skill=skill, limit=100).items
            return sorted(out, key=lambda t: -t.id)

        self.app.run("reviews:list", fetch, self.show, owner=self)

    def show(self, tasks) -> None:
        self.tasks = {str(t.id): t for t in tasks}
        done = sum(1 for t in tasks if t.status == "DONE")
        self.summary.configure(text=f"{len(tasks)} review task(s), {done} done" if tasks else
                               "No review tasks yet: dispatch code_review or security_review from the Tasks tab")
        rows = []
        for t in tasks:
            target = t.payload.get("path") or t.payload.get("diff") or t.payload.get("repo") or ""
            res = t.result if isinstance(t.result, dict) else {}
            verdict = res.get("verdict") or res.get("summary") or t.error or ""
            rows.append((str(t.id), [t.id, t.skill, t.status, str(target)[:80], str(verdict)[:100]],
                         {"DONE": "ok", "FAILED": "stopped", "RUNNING": "busy"}.get(t.status)))
        self.table.set_rows(rows)

    def show_one(self, iid) -> None:
        t = self.tasks.get(iid) if iid else None
        if t is None:
            return
        body = t.result if isinstance(t.result, str) else json.dumps(t.result, indent=2, ensure_ascii=False)
        self.view.set(f"task {t.id} {t.skill} {t.status}\npayload: {json.dumps(t.payload)}\n\n{body or t.error or ''}")

    def on_close(self) -> None:
        pass

    def get_settings(self) -> dict:
        return {"skills": list(REVIEW_SKILLS)}

    def apply_settings(self, cfg: dict) -> None:
        pass

    def export_data(self) -> list[dict]:
        return [{"id": t.id, "skill": t.skill, "status": t.status} for t in self.tasks.values()]

    def validate_record(self, data) -> tuple[bool, str]:
        return True, "OK"
