"""The Modules tab: every discovered module and why it is shown, hidden or
disabled; and the module hub (launcher/modules/hub.py, the same code as
`lead_client module`): the registry's modules with install, update, uninstall.
"""

from __future__ import annotations

import json
import tkinter as tk
from tkinter import ttk

from .. import theme
from ..modules import hub
from ..widgets import Table
from . import BUILTIN_NAMES
from .base import Tab


class ModulesTab(Tab):
    NAME = "modules"
    LABEL = "Modules"

    def build_tab(self, parent) -> None:
        parent.columnconfigure(0, weight=1)
        parent.rowconfigure(1, weight=1)
        parent.rowconfigure(5, weight=1)
        ttk.Label(parent, text="Loaded and found modules", style="Section.TLabel").grid(row=0, column=0, sticky="w")
        self.local = Table(parent, [("name", "Module", 110), ("label", "Tab", 110), ("version", "Version", 70),
                                    ("source", "Source", 80), ("state", "State", 330), ("settings", "Settings", 250)],
                           height=6)
        self.local.grid(row=1, column=0, sticky="nsew", pady=(4, 0))
        actions = ttk.Frame(parent)
        actions.grid(row=2, column=0, sticky="ew", pady=(4, 10))
        ttk.Button(actions, text="Export data", command=self.export).pack(side="left")
        self.export_note = ttk.Label(actions, text="", style="Muted.TLabel")
        self.export_note.pack(side="left", padx=10)
        head = ttk.Frame(parent)
        head.grid(row=3, column=0, sticky="ew")
        ttk.Label(head, text="Module hub", style="Section.TLabel").pack(side="left")
        ttk.Label(head, text="registry").pack(side="left", padx=(16, 4))
        self.registry = tk.StringVar(value=self.client.cfg["launcher"]["hub_registry"])
        ttk.Entry(head, textvariable=self.registry, width=60).pack(side="left")
        ttk.Button(head, text="Load", command=self.load_hub).pack(side="left", padx=6)
        bar = ttk.Frame(parent)
        bar.grid(row=4, column=0, sticky="ew", pady=(6, 4))
        for text, cmd in (("Install / update", self.install), ("Uninstall", self.uninstall)):
            ttk.Button(bar, text=text, command=cmd).pack(side="left", padx=(0, 6))
        self.note = ttk.Label(bar, text="", wraplength=800)
        self.note.pack(side="left", padx=10)
        self.remote = Table(parent, [("name", "Module", 120), ("version", "Hub version", 100),
                                     ("installed", "Installed", 100), ("desc", "Description", 420)], height=5)
        self.remote.grid(row=5, column=0, sticky="nsew")
        self.show_local()

    def on_refresh(self) -> None:
        self.show_local()

    def show_local(self) -> None:
        app = self.app
        shown = {s.name: s for s in app.slots}
        rows = []
        for f in app.found:
            slot = shown.get(f.name) if f.name not in BUILTIN_NAMES else None
            if f.name in BUILTIN_NAMES:
                state, tag = "left out: its NAME is a built-in tab's; rename the module", "stopped"
            elif slot is not None and slot.error:
                state, tag = "disabled after an error: " + slot.error.strip().splitlines()[-1][:120], "stopped"
            elif slot is not None:
                state, tag = "shown", "ok"
            elif f.name in app.left_out:
                state, tag = "left out: " + app.left_out[f.name], "degraded"
            else:
                state, tag = f"hidden (profile {app.cfg['launcher']['profile']} / [launcher.tabs])", "stale"
            settings = app.guard(slot, "get_settings") if slot is not None and not slot.error else None
            rows.append((f.name, [f.name, f.meta.get("label", ""), f.meta.get("version", ""),
                                  "bundled" if f.bundled else "hub", state,
                                  json.dumps(settings) if settings else ""], tag))
        self.local.set_rows(rows)

    def export(self) -> None:
        name = self.local.selected()
        if name is None:
            self.export_note.configure(text="select a loaded module first")
            return
        if not self.app.export_module_data(name, lambda p: self.export_note.configure(text=f"exported to {p}")):
            self.export_note.configure(text=f"{name} is not loaded, so it has nothing to export")

    def load_hub(self) -> None:
        source = self.registry.get().strip()
        cfg = self.client.cfg

        def work():
            installed = {i["name"]: i["version"] for i in hub.list_installed(cfg)}
            return hub.load_registry(hub.registry_source(cfg, source or None)), installed

        self.run("hub", work, self.show_hub, self.failed)

    def show_hub(self, res) -> None:
        available, installed = res
        self.remote.set_rows([(m["name"], [m["name"], m["version"], installed.get(m["name"]) or "-",
                                           m["description"]], None) for m in available])
        self.note.configure(text=f"{len(available)} module(s) in the hub", foreground=theme.TEXT)

    def failed(self, exc) -> None:
        self.note.configure(text=str(exc), foreground=theme.BAD)

    def install(self) -> None:
        name = self.remote.selected()
        if name is None:
            self.note.configure(text="select a module of the hub first", foreground=theme.MUTED)
            return
        source = self.registry.get().strip() or None
        self.run("install", lambda: hub.install(self.client.cfg, name, source),
                 lambda r: (self.note.configure(text=f"installed {r['name']} {r['version']} (SHA-256 verified); "
                                                     f"{r['note']}", foreground=theme.OK), self.load_hub()),
                 self.failed)

    def uninstall(self) -> None:
        name = self.remote.selected() or self.local.selected()
        if name is None:
            return
        self.run("uninstall", lambda: hub.uninstall(self.client.cfg, name),
                 lambda r: (self.note.configure(text=f"uninstalled {r['name']}", foreground=theme.OK),
                            self.load_hub()), self.failed)


