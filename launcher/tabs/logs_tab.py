"""The Logs tab: pick a process's log (the files under [paths] logs, as
`lead_client logs`), follow its tail, and filter the lines by text.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from fleet.logs import tail_lines

from ..widgets import ScrolledText
from .base import Tab

TAIL = 500


class LogsTab(Tab):
    NAME = "logs"
    LABEL = "Logs"

    def build_tab(self, parent) -> None:
        parent.columnconfigure(0, weight=1)
        parent.rowconfigure(1, weight=1)
        bar = ttk.Frame(parent)
        bar.grid(row=0, column=0, sticky="ew", pady=(0, 6))
        ttk.Label(bar, text="Process").pack(side="left")
        self.name = tk.StringVar()
        self.names = ttk.Combobox(bar, textvariable=self.name, values=[], width=22, state="readonly")
        self.names.pack(side="left", padx=(4, 12))
        self.names.bind("<<ComboboxSelected>>", lambda _e: self.on_refresh())
        ttk.Label(bar, text="Filter").pack(side="left")
        self.filter = tk.StringVar()
        entry = ttk.Entry(bar, textvariable=self.filter, width=24)
        entry.pack(side="left", padx=(4, 12))
        entry.bind("<KeyRelease>", lambda _e: self.on_refresh())
        self.follow = tk.BooleanVar(value=True)
        ttk.Checkbutton(bar, text="Follow", variable=self.follow).pack(side="left")
        self.info = ttk.Label(bar, text="", style="Muted.TLabel")
        self.info.pack(side="left", padx=12)
        self.view = ScrolledText(parent, height=30)
        self.view.text.configure(wrap="none")
        self.view.grid(row=1, column=0, sticky="nsew")
        self.view.set("No log chosen yet.")
        self._first = True

    def on_refresh(self) -> None:
        self.run("names", self.client.log_names, self.show_names)
        name = self.name.get()
        if not name or (not self.follow.get() and not self._first):
            return
        needle = self.filter.get()
        self.run("tail", lambda: self.read(name, needle), self.show_lines)

    def read(self, name: str, needle: str) -> tuple[str, str, str, list[str]]:
        path = self.client.log_path(name)
        lines = tail_lines(path, TAIL)
        if needle:
            low = needle.lower()
            lines = [ln for ln in lines if low in ln.lower()]
        return name, needle, path, lines

    def show_names(self, names: list[str]) -> None:
        self.names.configure(values=names)
        if names and not self.name.get():
            self.name.set("supervisor" if "supervisor" in names else names[0])
            self.on_refresh()
        if not names:
            self.info.configure(text="no logs yet: they appear when the fleet runs")

    def show_lines(self, res) -> None:
        name, needle, path, lines = res
        if name != self.name.get() or needle != self.filter.get():
            return  # an answer to an earlier choice: the current one is on its way
        self._first = False
        import os

        shown = os.path.relpath(path, self.client.home) if path.startswith(self.client.home) else path
        self.info.configure(text=f"{shown} · last {len(lines)} line(s)" + (" matching" if needle else ""))
        self.view.set("\n".join(lines) if lines else "(no matching lines)", keep_end=True)
        if self.follow.get():
            self.view.text.see("end")
