"""The Tasks tab: the task list filtered by status, skill, agent and text,
paged; a task's detail with attempts and events; retry and cancel; and
dispatch, from a form built from the skill's PAYLOAD_SCHEMA or an instruction.
"""

from __future__ import annotations

import json
import tkinter as tk
from tkinter import ttk

from fleet.cli.common import fmt_age, fmt_ts, short
from fleet.cli.tasks import STATUSES

from ..widgets import ScrolledText, Table
from .base import Tab

PAGE = 50


class TasksTab(Tab):
    NAME = "tasks"
    LABEL = "Tasks"

    def build_tab(self, parent) -> None:
        self.last_dispatched = None
        self.offset = 0
        self.total = 0
        self.skill_infos: dict = {}
        self.fields: dict[str, tuple[str, tk.Variable]] = {}
        parent.columnconfigure(0, weight=3)
        parent.columnconfigure(1, weight=2)
        parent.rowconfigure(1, weight=1)
        flt = ttk.Frame(parent)
        flt.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, 6))
        self.status_var, self.skill_var = tk.StringVar(value="all"), tk.StringVar(value="all")
        self.agent_var, self.text_var = tk.StringVar(), tk.StringVar()
        ttk.Label(flt, text="Status").pack(side="left")
        ttk.Combobox(flt, textvariable=self.status_var, values=["all", *STATUSES], width=15,
                     state="readonly").pack(side="left", padx=(4, 10))
        ttk.Label(flt, text="Skill").pack(side="left")
        self.skill_filter = ttk.Combobox(flt, textvariable=self.skill_var, values=["all"], width=16)
        self.skill_filter.pack(side="left", padx=(4, 10))
        ttk.Label(flt, text="Agent").pack(side="left")
        ttk.Entry(flt, textvariable=self.agent_var, width=12).pack(side="left", padx=(4, 10))
        ttk.Label(flt, text="Text").pack(side="left")
        text_entry = ttk.Entry(flt, textvariable=self.text_var, width=18)
        text_entry.pack(side="left", padx=(4, 10))
        text_entry.bind("<Return>", lambda _e: self.apply_filter())
        ttk.Button(flt, text="Filter", command=self.apply_filter).pack(side="left")
        self.table = Table(parent, [("id", "ID", 50), ("skill", "Skill", 100), ("status", "Status", 100),
                                    ("prio", "Prio", 40), ("tries", "Tries", 45), ("worker", "Worker", 75),
                                    ("age", "Created", 65), ("error", "Error", 120)], height=12)
        self.table.grid(row=1, column=0, sticky="nsew")
        self.table.bind_select(self.show_detail)
        pager = ttk.Frame(parent)
        pager.grid(row=2, column=0, sticky="ew", pady=(4, 0))
        ttk.Button(pager, text="‹ Prev", command=lambda: self.page(-1)).pack(side="left")
        ttk.Button(pager, text="Next ›", command=lambda: self.page(1)).pack(side="left", padx=4)
        self.page_label = ttk.Label(pager, text="", style="Muted.TLabel")
        self.page_label.pack(side="left", padx=8)
        right = ttk.Frame(parent)
        right.grid(row=1, column=1, sticky="nsew", padx=(8, 0))
        right.rowconfigure(0, weight=1)
        right.columnconfigure(0, weight=1)
        self.detail = ScrolledText(right, height=12)
        self.detail.grid(row=0, column=0, sticky="nsew")
        self.detail.set("Select a task to see its payload, result, attempts and events.")
        btns = ttk.Frame(right)
        btns.grid(row=1, column=0, sticky="w", pady=(4, 0))  # beside the pager
        ttk.Button(btns, text="Retry", command=lambda: self.single("retry")).pack(side="left")
        ttk.Button(btns, text="Cancel task", command=lambda: self.single("cancel")).pack(side="left", padx=6)
        self._build_dispatch(parent)

    def _build_dispatch(self, parent) -> None:
        box = ttk.LabelFrame(parent, text="Dispatch", padding=8)
        box.grid(row=3, column=0, columnspan=2, sticky="ew", pady=(8, 0))
        box.columnconfigure(1, weight=1)
        top = ttk.Frame(box)
        top.grid(row=0, column=0, columnspan=2, sticky="ew")
        ttk.Label(top, text="Skill").pack(side="left")
        self.dispatch_skill = tk.StringVar()
        self.skill_box = ttk.Combobox(top, textvariable=self.dispatch_skill, values=[], width=20, state="readonly")
        self.skill_box.pack(side="left", padx=(4, 10))
        self.skill_box.bind("<<ComboboxSelected>>", lambda _e: self.build_form())
        ttk.Label(top, text="Priority").pack(side="left")
        self.priority = tk.IntVar(value=5)
        ttk.Spinbox(top, from_=1, to=10, textvariable=self.priority, width=4).pack(side="left", padx=(4, 10))
        self.dispatch_button = ttk.Button(top, text="Dispatch", style="Accent.TButton", command=self.dispatch)
        self.dispatch_button.pack(side="left")
        self.skill_doc = ttk.Label(top, text="", style="Muted.TLabel")
        self.skill_doc.pack(side="left", padx=10)
        self.form = ttk.Frame(box)
        self.form.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(6, 6))
        ttk.Label(box, text="Or an instruction").grid(row=2, column=0, sticky="w")
        inst = ttk.Frame(box)
        inst.grid(row=2, column=1, sticky="ew")
        inst.columnconfigure(0, weight=1)
        self.instruction = tk.StringVar()
        ttk.Entry(inst, textvariable=self.instruction).grid(row=0, column=0, sticky="ew", padx=(6, 6))
        ttk.Button(inst, text="Submit instruction", command=self.instruct).grid(row=0, column=1)
        self.dispatch_result = ttk.Label(box, text="", style="Muted.TLabel", wraplength=1000)
        self.dispatch_result.grid(row=3, column=0, columnspan=2, sticky="w", pady=(4, 0))

    # -- list -------------------------------------------------------------------
    def on_refresh(self) -> None:
        if not self.skill_infos:
            self.run("skills", self.client.skills, self.show_skills)
        status = None if self.status_var.get() == "all" else self.status_var.get()
        skill = None if self.skill_var.get() in ("all", "") else self.skill_var.get()
        agent, text, offset = self.agent_var.get().strip(), self.text_var.get().strip(), self.offset
        self.run("list", lambda: self.client.list_tasks(status=status, skill=skill, agent=agent, text=text,
                                                        limit=PAGE, offset=offset), self.show_page)

    def apply_filter(self) -> None:
        self.offset = 0
        self.on_refresh()

    def page(self, step: int) -> None:
        new = self.offset + step * PAGE
        if 0 <= new < max(self.total, 1):
            self.offset = new
            self.on_refresh()

    def show_page(self, page) -> None:
        import time

        now = time.time()
        self.total = page.total
        self.table.set_rows([(str(t.id), [t.id, t.skill, t.status, t.priority, f"{t.attempts}/{t.max_attempts}",
                                          t.worker or t.assigned_to or "", fmt_age(now - t.created_at),
                                          short(t.error or "", 40)],
                              {"DONE": "ok", "FAILED": "stopped", "RUNNING": "busy", "WAITING_HUMAN": "degraded",
                               "CANCELLED": "stale"}.get(t.status)) for t in page.items])
        first = self.offset + 1 if page.items else 0
        self.page_label.configure(text=f"{first}–{self.offset + len(page.items)} of {page.total}")

    # -- detail -----------------------------------------------------------------
    def show_detail(self, iid) -> None:
        if iid is None:
            return
        self.run("detail", lambda: self.client.task_detail(int(iid)), self.render_detail)

    def render_detail(self, d: dict) -> None:
        t = d["task"]
        lines = [f"task {t.id}  {t.skill}  {t.status}" + ("  (dead letter)" if t.dead_letter else ""),
                 f"priority {t.priority}   attempts {t.attempts}/{t.max_attempts}   worker {t.worker or '-'}",
                 f"created {fmt_ts(t.created_at)}   finished {fmt_ts(t.finished_at) or '-'}",
                 "payload: " + json.dumps(t.payload, ensure_ascii=False)]
        if t.question:
            lines.append("question: " + json.dumps(t.question, ensure_ascii=False))
        if t.error:
            lines.append(f"error: {t.error}" + (f" ({t.error_reason})" if t.error_reason else ""))
        if t.result is not None:
            lines.append("result: " + (t.result if isinstance(t.result, str)
                                       else json.dumps(t.result, indent=1, ensure_ascii=False)))
        lines.append("")
        lines.append("attempts:")
        for a in d["attempts"]:
            took = fmt_age(a["ended_at"] - a["started_at"]) if a.get("ended_at") else "running"
            lines.append(f"  #{a['attempt_no']} {a['worker']} {fmt_ts(a['started_at'])} {took} {a['outcome']}"
                         + (f" {short(a.get('error') or '', 60)}" if a.get("error") else ""))
        lines.append("events:")
        for e in d["history"]:
            lines.append(f"  {fmt_ts(e['ts'])} {e['action']} by {e['actor']}"
                         + (f" {short(e['detail'], 60)}" if e.get("detail") else ""))
        self.detail.set("\n".join(lines))

    def single(self, verb: str) -> None:
        iid = self.table.selected()
        if iid is None:
            self.app.set_message(f"select a task to {verb}")
            return
        fn = self.client.retry if verb == "retry" else self.client.cancel
        self.run(verb, lambda: fn(int(iid)),
                 lambda t: (self.app.set_message(f"task {t.id}: {t.status}"), self.on_refresh(), self.show_detail(iid)))

    # -- dispatch ---------------------------------------------------------------
    def show_skills(self, infos: dict) -> None:
        self.skill_infos = infos
        names = sorted(infos)
        self.skill_box.configure(values=names)
        self.skill_filter.configure(values=["all", *names])
        if names and not self.dispatch_skill.get():
            self.dispatch_skill.set(names[0])
            self.build_form()

    def build_form(self) -> None:
        for child in self.form.winfo_children():
            child.destroy()
        self.fields = {}
        info = self.skill_infos.get(self.dispatch_skill.get())
        if info is None:
            return
        self.skill_doc.configure(text=short(info.description or "", 60))
        schema = info.payload_schema or {}
        props = {k: v for k, v in (schema.get("properties") or {}).items()
                 if k not in ("human_answer", "human_question", "agent")}
        required = set(schema.get("required") or [])
        if not props:
            ttk.Label(self.form, text="This skill takes no payload fields.", style="Muted.TLabel").grid(sticky="w")
        for i, (name, prop) in enumerate(props.items()):
            row, col = divmod(i, 3)
            cell = ttk.Frame(self.form)
            cell.grid(row=row, column=col, sticky="w", padx=(0, 14), pady=2)
            kind = _kind(prop)
            ttk.Label(cell, text=name + (" *" if name in required else ""), width=15).pack(side="left")
            if kind == "boolean":
                var = tk.StringVar(value="")
                ttk.Combobox(cell, textvariable=var, values=["", "true", "false"], width=17,
                             state="readonly").pack(side="left")
            elif "enum" in prop:
                var = tk.StringVar(value="")
                ttk.Combobox(cell, textvariable=var, values=["", *map(str, prop["enum"])], width=17,
                             state="readonly").pack(side="left")
            else:
                var = tk.StringVar(value="")
                ttk.Entry(cell, textvariable=var, width=19).pack(side="left")
            self.fields[name] = (kind, var, prop)

    def payload(self) -> dict:
        out = {}
        for name, (kind, var, prop) in self.fields.items():
            raw = var.get().strip()
            if raw == "":
                continue
            try:
                if kind == "integer":
                    out[name] = int(raw)
                elif kind == "number":
                    out[name] = float(raw)
                elif kind == "boolean":
                    out[name] = raw == "true"
                elif kind in ("array", "object"):
                    out[name] = json.loads(raw)
                elif "enum" in prop:
                    out[name] = next((e for e in prop["enum"] if str(e) == raw), raw)
                else:
                    out[name] = raw
            except ValueError:
                raise ValueError(f"{name}: {raw!r} is not a valid {kind}"
                                 + (" (write JSON)" if kind in ("array", "object") else "")) from None
        return out

    def dispatch(self) -> None:
        skill = self.dispatch_skill.get()
        try:
            payload = self.payload()
        except ValueError as exc:
            self.dispatch_result.configure(text=str(exc))
            return
        prio = int(self.priority.get() or 5)
        self.run("dispatch", lambda: self.client.dispatch(skill, payload, prio), self.dispatched,
                 lambda exc: self.dispatch_result.configure(text=f"not queued: {exc}"))

    def instruct(self) -> None:
        text = self.instruction.get()
        self.run("instruct", lambda: self.client.instruct(text), self.dispatched,
                 lambda exc: self.dispatch_result.configure(text=f"not queued: {exc}"))

    def dispatched(self, res) -> None:
        task, warning, *spec = res
        self.last_dispatched = task.id
        text = f"task {task.id} queued: {task.skill} {short(task.payload, 80)}"
        how = (spec[0].get("intent") or {}) if spec else {}
        if how:
            text += f"  (read by the {how.get('method') or 'intent parser'}"
            text += f", confidence {how['confidence']:.2f})" if how.get("confidence") is not None else ")"
        if warning:
            text += f"  — warning: {warning}"
        self.dispatch_result.configure(text=text)
        self.on_refresh()


def _kind(prop: dict) -> str:
    t = prop.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return t
