"""The Fleet Comm tab (the manual's redesign): agent requests waiting for a
person as one-line summaries that expand, answered with approve, reject, more
info, feedback or discuss; and a manual chat with the configured model.
"""

from __future__ import annotations

import json
import tkinter as tk
from tkinter import ttk

from fleet.cli.common import fmt_age, short

from ..widgets import ScrolledText
from .base import Tab

ANSWERS = (("Approve", "approve"), ("Reject", "reject"), ("Need more info", "more_info"),
           ("Feedback", "feedback"), ("Discuss", "discuss"))


class CommTab(Tab):
    NAME = "comm"
    LABEL = "Fleet Comm"

    def build_tab(self, parent) -> None:
        self.expanded: set[int] = set()
        self.shown_ids: list[int] | None = None  # None: rebuild the list at the next answer
        self.texts: dict[int, tk.Text] = {}
        self.chat_log: list[str] = []
        parent.columnconfigure(0, weight=1)
        parent.rowconfigure(1, weight=3)
        parent.rowconfigure(4, weight=2)
        head = ttk.Frame(parent)
        head.grid(row=0, column=0, sticky="ew")
        ttk.Label(head, text="Agent requests", style="Section.TLabel").pack(side="left")
        self.count = ttk.Label(head, text="", style="Muted.TLabel")
        self.count.pack(side="left", padx=10)
        self.pinned = tk.BooleanVar(value=False)
        ttk.Checkbutton(head, text="Pin open", variable=self.pinned).pack(side="right")
        outer = ttk.Frame(parent)
        outer.grid(row=1, column=0, sticky="nsew", pady=(4, 8))
        outer.rowconfigure(0, weight=1)
        outer.columnconfigure(0, weight=1)
        self.canvas = tk.Canvas(outer, highlightthickness=0, background="#ffffff")
        sb = ttk.Scrollbar(outer, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=sb.set)
        self.canvas.grid(row=0, column=0, sticky="nsew")
        sb.grid(row=0, column=1, sticky="ns")
        self.requests = ttk.Frame(self.canvas, style="Panel.TFrame", padding=6)
        self._win = self.canvas.create_window(0, 0, window=self.requests, anchor="nw")
        self.requests.bind("<Configure>", lambda _e: self.canvas.configure(scrollregion=self.canvas.bbox("all")))
        self.canvas.bind("<Configure>", lambda e: self.canvas.itemconfigure(self._win, width=e.width))
        ttk.Separator(parent).grid(row=2, column=0, sticky="ew", pady=4)
        chat_head = ttk.Frame(parent)
        chat_head.grid(row=3, column=0, sticky="ew")
        ttk.Label(chat_head, text="Manual chat", style="Section.TLabel").pack(side="left")
        chain = ", ".join(self.client.cfg["models"]["chain"]) or "(no providers in [models] chain)"
        ttk.Label(chat_head, text=f"through call_model: {chain}", style="Muted.TLabel").pack(side="left", padx=10)
        self.transcript = ScrolledText(parent, height=8)
        self.transcript.grid(row=4, column=0, sticky="nsew", pady=(4, 4))
        line = ttk.Frame(parent)
        line.grid(row=5, column=0, sticky="ew")
        line.columnconfigure(0, weight=1)
        self.prompt = tk.StringVar()
        entry = ttk.Entry(line, textvariable=self.prompt)
        entry.grid(row=0, column=0, sticky="ew", padx=(0, 6))
        entry.bind("<Return>", lambda _e: self.send())
        ttk.Button(line, text="Send", command=self.send).grid(row=0, column=1)

    def on_refresh(self) -> None:
        self.run("waiting", self.client.waiting_human, self.show_requests)

    def show_requests(self, tasks) -> None:
        ids = [t.id for t in tasks]
        self.count.configure(text=f"{len(ids)} waiting for a person" if ids else "none waiting")
        if ids == self.shown_ids:
            return  # keep what the operator is typing
        self.shown_ids = ids
        for child in self.requests.winfo_children():
            child.destroy()
        self.texts = {}
        if not tasks:
            ttk.Label(self.requests, text="No agent is waiting for an answer.", background="#ffffff").pack(anchor="w")
            return
        import time

        now = time.time()
        for t in tasks:
            q = t.question if isinstance(t.question, dict) else {"question": t.question}
            row = ttk.Frame(self.requests, style="Panel.TFrame")
            row.pack(fill="x", pady=2)
            open_ = t.id in self.expanded or (self.pinned.get() and len(tasks) == 1)
            summary = (f"{'▾' if open_ else '▸'}  task {t.id} · {t.skill} · {short(q.get('question') or '', 90)}"
                       f"  ({fmt_age(now - t.updated_at)} ago)")
            ttk.Button(row, text=summary, command=lambda i=t.id: self.toggle(i)).pack(fill="x")
            if open_:
                self._expanded_body(row, t, q)

    def _expanded_body(self, row, t, q: dict) -> None:
        body = ttk.Frame(row, padding=(18, 4))
        body.pack(fill="x")
        ttk.Label(body, text=q.get("question") or "", wraplength=900).pack(anchor="w")
        ttk.Label(body, text="payload: " + short(json.dumps(t.payload, ensure_ascii=False), 140),
                  style="Muted.TLabel").pack(anchor="w")
        options = q.get("options") or []
        if options:
            opt = ttk.Frame(body)
            opt.pack(anchor="w", pady=(4, 0))
            ttk.Label(opt, text="Answer with an option:").pack(side="left")
            for o in options:
                ttk.Button(opt, text=str(o), command=lambda i=t.id, v=str(o): self.answer_option(i, v)) \
                    .pack(side="left", padx=3)
        text = tk.Text(body, height=2, wrap="word", relief="solid", borderwidth=1)
        text.pack(fill="x", pady=(4, 4))
        self.texts[t.id] = text
        btns = ttk.Frame(body)
        btns.pack(anchor="w")
        for label, decision in ANSWERS:
            ttk.Button(btns, text=label, command=lambda i=t.id, d=decision: self.respond(i, d)) \
                .pack(side="left", padx=(0, 6))

    def toggle(self, task_id: int) -> None:
        if task_id in self.expanded and not self.pinned.get():
            self.expanded.discard(task_id)
        else:
            self.expanded.add(task_id)
        self.shown_ids = None  # rebuild
        self.on_refresh()

    def respond(self, task_id: int, decision: str) -> None:
        widget = self.texts.get(task_id)
        text = widget.get("1.0", "end-1c") if widget is not None else ""
        self.run(f"respond:{task_id}", lambda: self.client.respond(task_id, decision, text), self.answered,
                 lambda exc: self.app.set_message(f"task {task_id} not answered: {exc}"))

    def answer_option(self, task_id: int, option: str) -> None:
        self.run(f"respond:{task_id}", lambda: self.client.answer_option(task_id, option), self.answered,
                 lambda exc: self.app.set_message(f"task {task_id} not answered: {exc}"))

    def answered(self, task) -> None:
        self.app.set_message(f"task {task.id} answered; it is {task.status} again")
        self.expanded.discard(task.id)
        self.shown_ids = None
        self.on_refresh()

    def send(self) -> None:
        prompt = self.prompt.get().strip()
        if not prompt:
            return
        self.prompt.set("")
        self.chat_log.append(f"you: {prompt}")
        self.transcript.set("\n".join(self.chat_log), keep_end=True)
        self.run("chat", lambda: self.client.chat(prompt), self.reply)

    def reply(self, res: dict) -> None:
        who = f"{res.get('provider')}/{res.get('model')}" if res.get("ok") else "routing"
        self.chat_log.append(f"{who}: {res['text']}")
        self.transcript.set("\n".join(self.chat_log), keep_end=True)
        self.transcript.text.see("end")
