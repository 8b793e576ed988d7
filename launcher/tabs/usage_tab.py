"""The Usage tab: model cost and tokens per UTC day over the last 30 days,
drawn on a Tk canvas from the usage ledger, and the budgets with their state
(fleet.costs.budget_status, as `lead_client budget`).
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from .. import theme
from ..widgets import Table
from .base import Tab

DAYS = 30


class UsageTab(Tab):
    NAME = "usage"
    LABEL = "Usage"

    def build_tab(self, parent) -> None:
        self.days: list[dict] = []
        parent.columnconfigure(0, weight=1)
        parent.rowconfigure(1, weight=3)
        parent.rowconfigure(4, weight=1)
        head = ttk.Frame(parent)
        head.grid(row=0, column=0, sticky="ew")
        ttk.Label(head, text=f"Cost and tokens per day, last {DAYS} days (UTC)", style="Section.TLabel") \
            .pack(side="left")
        self.totals = ttk.Label(head, text="", style="Muted.TLabel")
        self.totals.pack(side="left", padx=12)
        self.canvas = tk.Canvas(parent, background=theme.PANEL, highlightthickness=0, height=330)
        self.canvas.grid(row=1, column=0, sticky="nsew", pady=(6, 8))
        self.canvas.bind("<Configure>", lambda _e: self.draw())
        bhead = ttk.Frame(parent)
        bhead.grid(row=3, column=0, sticky="ew")
        ttk.Label(bhead, text="Budgets", style="Section.TLabel").pack(side="left")
        self.budget_note = ttk.Label(bhead, text="", style="Muted.TLabel")
        self.budget_note.pack(side="left", padx=10)
        self.budgets = Table(parent, [("budget", "Budget", 160), ("period", "Period", 80), ("spent", "Spent", 90),
                                      ("limit", "Limit", 90), ("calls", "Calls", 70), ("max", "Max calls", 80),
                                      ("used", "Used", 70), ("state", "State", 90), ("enf", "Enforcement", 100)],
                             height=4)
        self.budgets.grid(row=4, column=0, sticky="nsew", pady=(4, 0))

    def on_refresh(self) -> None:
        self.run("days", lambda: self.client.usage_by_day(DAYS), self.show_days)
        self.run("budgets", self.client.budgets, self.show_budgets)

    def show_days(self, days: list[dict]) -> None:
        self.days = days
        cost = sum(d["cost_usd"] for d in days)
        tokens = sum(d["tokens"] for d in days)
        calls = sum(d["calls"] for d in days)
        self.totals.configure(text=f"total ${cost:.4f} · {tokens:,} tokens · {calls:,} calls")
        self.draw()

    def draw(self) -> None:
        c = self.canvas
        c.delete("all")
        w, h = max(c.winfo_width(), 400), max(c.winfo_height(), 200)
        left, right, top, bottom = 70, 70, 24, 36
        c.create_text(left, 10, text="cost (USD) ▮", anchor="w", fill=theme.ACCENT)
        c.create_text(w - right, 10, text="tokens ●", anchor="e", fill=theme.WARN)
        c.create_line(left, h - bottom, w - right, h - bottom, fill=theme.MUTED)
        if not self.days:
            c.create_text(w / 2, h / 2, text="loading…", fill=theme.MUTED)
            return
        max_cost = max((d["cost_usd"] for d in self.days), default=0) or 1.0
        max_tok = max((d["tokens"] for d in self.days), default=0) or 1
        n = len(self.days)
        step = (w - left - right) / n
        for frac in (0.5, 1.0) if any(d["calls"] for d in self.days) else ():
            y = h - bottom - frac * (h - top - bottom)
            c.create_line(left, y, w - right, y, fill="#e4e7eb", dash=(2, 4))
            c.create_text(left - 6, y, text=f"${max_cost * frac:.3g}", anchor="e", fill=theme.MUTED)
            c.create_text(w - right + 6, y, text=f"{max_tok * frac:,.0f}", anchor="w", fill=theme.MUTED)
        points = []
        for i, d in enumerate(self.days):
            x0 = left + i * step + step * 0.15
            x1 = left + (i + 1) * step - step * 0.15
            bh = (h - top - bottom) * d["cost_usd"] / max_cost
            if bh > 0:
                c.create_rectangle(x0, h - bottom - bh, x1, h - bottom, fill=theme.ACCENT, width=0)
            points.append(((x0 + x1) / 2, h - bottom - (h - top - bottom) * d["tokens"] / max_tok))
            if i % 5 == 0 or i == n - 1:
                c.create_text((x0 + x1) / 2, h - bottom + 12, text=d["day"], fill=theme.MUTED)
        if len(points) > 1:
            c.create_line(*[v for p in points for v in p], fill=theme.WARN, width=2)
        for x, y in points:
            c.create_oval(x - 2, y - 2, x + 2, y + 2, fill=theme.WARN, outline="")
        if not any(d["calls"] for d in self.days):
            c.create_text(w / 2, h / 2, text="no model calls in the last 30 days", fill=theme.MUTED)

    def show_budgets(self, rows: list[dict]) -> None:
        self.budget_note.configure(text=f"{len(rows)} budget(s)" if rows else
                                   "none configured: set [budgets] global_usd or [budgets.skills.NAME] in Settings")
        self.budgets.set_rows([(str(i), [r["budget"], r["period"], f"${r['spent_usd']:.4f}",
                                         f"${r['limit_usd']:.2f}" if r["limit_usd"] else "-", r["calls"],
                                         r["max_calls"] or "-", f"{r['percent_used']:.1f}%", r["state"],
                                         r["enforcement"]],
                                {"ok": "ok", "warning": "degraded", "exceeded": "stopped"}.get(r["state"]))
                               for i, r in enumerate(rows)])
