"""The Settings tab: edits fleet.toml through the config schema (fleet.config
SCHEMA and edit_config, tomlkit so comments survive), validates before saving,
shows the schema's message for an invalid value, and says what needs a restart.
"""

from __future__ import annotations

import json
import tkinter as tk
import tomllib
from pathlib import Path
from tkinter import ttk

from fleet import config as fleet_config

from .. import theme
from .base import Tab


def restart_needed(section: str) -> str:
    """Who must restart for a change in `section` to take effect."""
    if section.startswith("launcher"):
        return "the launcher (close and open it again)"
    if section == "dashboard":
        return "the dashboard (lead_client.py restart dashboard)"
    if section in ("hardware", "thermal", "model_server"):
        return "the hardware supervisor (lead_client.py restart hw_supervisor)"
    return "the fleet: the supervisor and workers read fleet.toml when they start"


class SettingsTab(Tab):
    NAME = "settings"
    LABEL = "Settings"

    def build_tab(self, parent) -> None:
        self.section = None
        self.vars: dict[str, tuple[fleet_config.Key, tk.Variable, str]] = {}
        parent.columnconfigure(1, weight=1)
        parent.rowconfigure(0, weight=1)
        left = ttk.Frame(parent)
        left.grid(row=0, column=0, sticky="ns", padx=(0, 10))
        left.rowconfigure(0, weight=1)
        self.sections = tk.Listbox(left, width=24, exportselection=False, relief="flat", activestyle="none",
                                   selectbackground=theme.ACCENT)
        names = [n for n, s in fleet_config.SCHEMA.items() if s.keys or s.values is not None]
        for n in names:
            self.sections.insert("end", n)
        self.section_names = names
        self.sections.grid(row=0, column=0, sticky="ns")
        self.sections.bind("<<ListboxSelect>>", lambda _e: self.pick())
        right = ttk.Frame(parent)
        right.grid(row=0, column=1, sticky="nsew")
        right.columnconfigure(0, weight=1)
        right.rowconfigure(1, weight=1)
        self.title = ttk.Label(right, text="", style="Section.TLabel")
        self.title.grid(row=0, column=0, sticky="w")
        holder = ttk.Frame(right)
        holder.grid(row=1, column=0, sticky="nsew", pady=(6, 6))
        holder.rowconfigure(0, weight=1)
        holder.columnconfigure(0, weight=1)
        self.canvas = tk.Canvas(holder, highlightthickness=0, background=theme.BG)
        sb = ttk.Scrollbar(holder, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=sb.set)
        self.canvas.grid(row=0, column=0, sticky="nsew")
        sb.grid(row=0, column=1, sticky="ns")
        self.form = ttk.Frame(self.canvas)
        self._win = self.canvas.create_window(0, 0, window=self.form, anchor="nw")
        self.form.bind("<Configure>", lambda _e: self.canvas.configure(scrollregion=self.canvas.bbox("all")))
        self.canvas.bind("<Configure>", lambda e: self.canvas.itemconfigure(self._win, width=e.width))
        bottom = ttk.Frame(right)
        bottom.grid(row=2, column=0, sticky="ew")
        self.save_button = ttk.Button(bottom, text="Save", style="Accent.TButton", command=self.save)
        self.save_button.pack(side="left")
        ttk.Button(bottom, text="Revert", command=self.pick).pack(side="left", padx=6)
        self.result = ttk.Label(right, text="", wraplength=820, justify="left")
        self.result.grid(row=3, column=0, sticky="w", pady=(6, 0))
        ttk.Label(right, text=f"File: {self.client.cfg['config_file']}", style="Muted.TLabel") \
            .grid(row=4, column=0, sticky="w")
        self.sections.selection_set(0)
        self.pick()

    def raw_section(self, name: str) -> dict:
        path = Path(self.client.cfg["config_file"])
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, tomllib.TOMLDecodeError):
            raw = {}
        for part in name.split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        return raw if isinstance(raw, dict) else {}

    def pick(self, name: str | None = None) -> None:
        if name is None:
            sel = self.sections.curselection()
            name = self.section_names[sel[0]] if sel else self.section_names[0]
        self.section = name
        sec = fleet_config.SCHEMA[name]
        for child in self.form.winfo_children():
            child.destroy()
        self.vars = {}
        self.title.configure(text=f"[{name}]  {sec.doc}")
        raw = self.raw_section(name)
        keys = dict(sec.keys)
        if sec.values is not None:  # a map section: its entries in the file and the shipped defaults
            for k in {**sec.defaults, **raw}:
                if k not in keys and not isinstance(raw.get(k, sec.defaults.get(k)), dict):
                    keys[k] = fleet_config.Key(sec.defaults.get(k, sec.values.default), sec.values.doc,
                                               sec.values.type, sec.values.choices, sec.values.min, sec.values.max)
        for i, (key, spec) in enumerate(keys.items()):
            value = raw.get(key, sec.defaults.get(key, spec.default))
            ttk.Label(self.form, text=key, width=26).grid(row=2 * i, column=0, sticky="w", pady=(6, 0))
            kind = spec.kind
            if kind is bool:
                var: tk.Variable = tk.BooleanVar(value=bool(value))
                ttk.Checkbutton(self.form, variable=var).grid(row=2 * i, column=1, sticky="w", pady=(6, 0))
                shown = str(bool(value))
            elif spec.choices:
                var = tk.StringVar(value=str(value))
                ttk.Combobox(self.form, textvariable=var, values=[str(c) for c in spec.choices], width=30,
                             state="readonly").grid(row=2 * i, column=1, sticky="w", pady=(6, 0))
                shown = str(value)
            else:
                shown = json.dumps(value) if kind is list else str(value)
                var = tk.StringVar(value=shown)
                ttk.Entry(self.form, textvariable=var, width=50).grid(row=2 * i, column=1, sticky="w", pady=(6, 0))
            ttk.Label(self.form, text=spec.doc, style="Muted.TLabel", wraplength=700).grid(
                row=2 * i + 1, column=0, columnspan=2, sticky="w", padx=(12, 0))
            self.vars[key] = (spec, var, shown)

    def changes(self) -> dict:
        out = {}
        for key, (spec, var, shown) in self.vars.items():
            now = var.get()
            if str(now) == shown:
                continue
            out[(self.section, key)] = _parse(spec, now)
        return out

    def save(self) -> None:
        changes = self.changes()
        if not changes:
            self.result.configure(text="nothing changed", foreground=theme.MUTED)
            return
        home = self.client.home

        def work():
            fleet_config.edit_config(home, changes)
            cfg = self.client.reload()
            self.client.record_config_edit(sorted(f"[{s}] {k}" for s, k in changes))  # the audit trail
            return cfg

        def failed(exc):
            self.result.configure(text=f"not saved: {exc}", foreground=theme.BAD)

        self.run("save", work, lambda _cfg: self.saved(changes), failed)

    def saved(self, changes: dict) -> None:
        keys = ", ".join(f"[{s}] {k}" for s, k in changes)
        restart = sorted({restart_needed(s) for s, _ in changes})
        self.result.configure(text=f"saved {keys} to fleet.toml (comments kept). Takes effect after restarting "
                                   + "; and ".join(restart) + ".", foreground=theme.OK)
        self.app.set_message(f"settings saved: {keys}")
        self.app.settings_changed(self.client.cfg)
        self.pick(self.section)


def _parse(spec, text):
    """The typed value of a form field; text that does not parse is passed
    through so the schema refuses it with its own message."""
    kind = spec.kind
    if kind is bool:
        return bool(text)
    if not isinstance(text, str):
        return text
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is list:
            value = json.loads(text) if text.strip().startswith("[") else \
                [p.strip() for p in text.split(",") if p.strip()]
            return value
    except ValueError:
        return text
    return text
