"""The launcher window: sidebar (fleet state and Start/Stop/Pause/Resume/Drain),
a notebook of built-in tabs and modules, the status bar, the refresh timer, and
containment of a tab or module that raises (disabled, alerted; the window goes on).
"""

from __future__ import annotations

import importlib
import inspect
import os
import time
import tkinter as tk
import traceback
import webbrowser
from dataclasses import dataclass, field
from tkinter import ttk

from . import modules as modmod, theme
from .background import Background
from .fleet_start import FleetStarter
from .tabs import BUILTIN_NAMES, BUILTIN_TABS

WAITING_AFTER_S = 1.0  # a store call running longer than this shows "waiting" in the status bar


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@dataclass
class Slot:
    """One tab in the notebook: a built-in tab or a module, and its health."""
    name: str
    label: str
    obj: object
    frame: ttk.Frame
    builtin: bool
    files: set = field(default_factory=set)
    error: str | None = None


class App:
    def __init__(self, root: tk.Tk, client, *, refresh_s: float | None = None):
        self.root = root
        self.client = client
        self.cfg = client.cfg
        self.bg = Background()
        self.starter = FleetStarter()
        self.refresh_s = float(refresh_s or self.cfg["launcher"]["refresh_s"])
        self.status_doc: dict | None = None
        self.status_listeners: list = []
        self.slots: list[Slot] = []
        self.left_out: dict[str, str] = {}   # modules not shown, and why
        self.found: list = []                 # every discovered module file
        self.message = ""
        self.closed = False
        theme.apply(root)
        root.title(f"Fleet launcher: {self.cfg['fleet']['name']} ({self.cfg['home']})")
        root.geometry("1280x800")
        root.minsize(1000, 640)
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.report_callback_exception = self._callback_exception
        self._build()
        self._load_tabs()
        self._pump_id = root.after(30, self._pump)
        self._tick_id = root.after(10, self._tick)

    # -- layout -------------------------------------------------------------
    def _build(self) -> None:
        root = self.root
        root.columnconfigure(1, weight=1)
        root.rowconfigure(0, weight=1)
        side = ttk.Frame(root, style="Sidebar.TFrame", padding=(14, 14), width=210)
        side.grid(row=0, column=0, sticky="nsw")
        side.grid_propagate(False)
        side.columnconfigure(0, weight=1)
        ttk.Label(side, text=self.cfg["fleet"]["name"], style="SidebarTitle.TLabel").grid(sticky="w")
        home = self.cfg["home"]
        short_home = home if len(home) <= 22 else "…" + os.sep + os.path.basename(home)[-20:]
        ttk.Label(side, text=short_home, style="Sidebar.TLabel").grid(
            sticky="w", pady=(2, 10))  # the whole path is in the window title
        self.state_label = ttk.Label(side, text="connecting…", style="SidebarState.TLabel")
        self.state_label.grid(sticky="w")
        self.state_detail = ttk.Label(side, text="", style="Sidebar.TLabel", wraplength=180, justify="left")
        self.state_detail.grid(sticky="w", pady=(2, 12))
        self.buttons = {}
        grid = ttk.Frame(side, style="Sidebar.TFrame")
        grid.grid(sticky="ew")
        grid.columnconfigure((0, 1), weight=1, uniform="b")
        for i, (key, text, cmd) in enumerate((
                ("start", "Start", self.start_fleet), ("stop", "Stop", lambda: self.control("stop")),
                ("pause", "Pause", lambda: self.control("pause")), ("resume", "Resume", lambda: self.control("resume")),
                ("drain", "Drain", lambda: self.control("drain")), ("dashboard", "Dashboard", self.open_dashboard),
                ("report", "Report issue", self.report_issue))):
            b = ttk.Button(grid, text=text, command=cmd, style="Sidebar.TButton")
            b.grid(row=i // 2, column=i % 2, sticky="ew", padx=(0 if i % 2 == 0 else 3, 0 if i % 2 else 3), pady=3)
            self.buttons[key] = b
        ttk.Separator(side).grid(sticky="ew", pady=(12, 8))
        side.rowconfigure(side.grid_size()[1], weight=1)
        # The tabs: a list here (it scales to any number of modules; a tab strip would squeeze their labels).
        self.nav = ttk.Treeview(side, show="tree", selectmode="browse", style="Nav.Treeview")
        self.nav.tag_configure("disabled", foreground="#ff8a80")
        self.nav.grid(sticky="nsew")
        self.nav.bind("<<TreeviewSelect>>", lambda _e: self._nav_selected())
        self.notebook = ttk.Notebook(root, style="Pages.TNotebook")
        self.notebook.grid(row=0, column=1, sticky="nsew", padx=(8, 8), pady=(8, 0))
        self.notebook.bind("<<NotebookTabChanged>>", lambda _e: self._page_changed())
        self.status_bar = ttk.Label(root, text="", style="Status.TLabel", anchor="w")
        self.status_bar.grid(row=1, column=0, columnspan=2, sticky="ew")

    def _load_tabs(self) -> None:
        cfg = self.cfg
        wanted: dict[str, tuple] = {}
        for name, modname, clsname in BUILTIN_TABS:
            if modmod.shown(cfg, name):
                cls = getattr(importlib.import_module(modname), clsname)
                wanted[name] = ("builtin", cls, None)
        self.found = modmod.discover(cfg)
        for f in self.found:
            if f.cls is None:
                self.left_out[f.name] = f"cannot be loaded: {f.error}"
            elif f.name in BUILTIN_NAMES:
                continue  # never replaces a built-in tab (the Modules tab says so)
            elif modmod.shown(cfg, f.name, f.meta["default_enabled"]):
                wanted[f.name] = ("module", f.cls, f)
        deps = {n: list(getattr(cls, "DEPENDS_ON", []) or []) for n, (_, cls, _) in wanted.items()}
        self.left_out.update(modmod.resolve_dependencies(deps))
        order = [n for n, _, _ in BUILTIN_TABS if n != "modules"] + sorted(
            n for n, (kind, _, _) in wanted.items() if kind == "module") + ["modules"]
        for name in order:
            if name not in wanted or name in self.left_out:
                continue
            kind, cls, found = wanted[name]
            self._add_slot(name, cls, kind == "builtin", found)

    def _add_slot(self, name: str, cls, builtin: bool, found=None) -> None:
        frame = ttk.Frame(self.notebook, padding=10)
        label = str(getattr(cls, "LABEL", name))
        files = {os.path.realpath(inspect.getfile(cls))}
        slot = Slot(name, label, None, frame, builtin, files)
        self.slots.append(slot)
        self.notebook.add(frame, text=label)
        self.nav.insert("", "end", iid=name, text=f" {label}")
        try:
            slot.obj = cls(self)
        except Exception:  # noqa: BLE001 - contained: the module is disabled
            self.disable(slot, traceback.format_exc(limit=4))
            return
        self.guard(slot, "build_tab", frame)
        self.guard(slot, "apply_settings", self.cfg)

    # -- containment ----------------------------------------------------------
    def slot_of(self, owner) -> Slot | None:
        return next((s for s in self.slots if s.obj is owner), None)

    def guard(self, slot: Slot, hook: str, *args):
        """Call a hook of a tab or module; one that raises is disabled."""
        if slot.error is not None or slot.obj is None:
            return None
        try:
            return getattr(slot.obj, hook)(*args)
        except Exception:  # noqa: BLE001 - contained: the module is disabled
            self.disable(slot, f"{hook}: " + traceback.format_exc(limit=4))
            return None

    def disable(self, slot: Slot, why: str) -> None:
        """Take a failed tab or module out of service: its tab says why, an alert is raised."""
        if slot.error is not None:
            return
        slot.error = why.strip()
        for child in slot.frame.winfo_children():
            child.destroy()
        kind = "tab" if slot.builtin else "module"
        ttk.Label(slot.frame, text=f"The {kind} “{slot.label}” failed and has been disabled.",
                  style="Section.TLabel").pack(anchor="w")
        ttk.Label(slot.frame, text="The rest of the launcher keeps working. Fix or remove it, then restart the "
                  "launcher. What it raised:", wraplength=900).pack(anchor="w", pady=(6, 6))
        text = tk.Text(slot.frame, height=14, wrap="word", relief="flat", font="TkFixedFont")
        text.insert("1.0", slot.error)
        text.configure(state="disabled")
        text.pack(fill="both", expand=True)
        try:
            self.notebook.tab(slot.frame, text=f"{slot.label} (disabled)")
            self.nav.item(slot.name, text=f" {slot.label} (disabled)", tags=("disabled",))
        except tk.TclError:
            pass
        last = slot.error.strip().splitlines()[-1][:300]
        msg = f"launcher {kind} {slot.name} disabled after an error: {last}"
        self.set_message(msg)
        self.run("alert:" + slot.name, lambda: self.client.ctx.store.raise_alert("warning", "launcher", msg))

    def _callback_exception(self, exc, value, tb) -> None:
        """Tk callbacks (buttons, bindings) that raise: disable the tab or module they came from."""
        files = {os.path.realpath(f.filename) for f in traceback.extract_tb(tb)}
        for slot in self.slots:
            if slot.files & files:
                self.disable(slot, "".join(traceback.format_exception(exc, value, tb, limit=6)))
                return
        self.set_message(f"error: {type(value).__name__}: {value}")
        traceback.print_exception(exc, value, tb)

    # -- background work ------------------------------------------------------
    def run(self, key: str, fn, on_done=None, on_error=None, owner=None, wait: bool = True) -> bool:
        """Run fn() off the Tk thread; its result comes back to on_done on the Tk thread."""
        slot = self.slot_of(owner) if owner is not None else None

        def done(value):
            if self.closed:
                return
            if slot is not None:
                if slot.error is None:
                    try:
                        on_done(value)
                    except Exception:  # noqa: BLE001 - contained
                        self.disable(slot, f"{key}: " + traceback.format_exc(limit=4))
            elif on_done is not None:
                on_done(value)

        def failed(exc):
            if self.closed:
                return
            if on_error is not None:
                on_error(exc)
            else:
                self.set_message(f"{key}: {exc}")

        return self.bg.submit(key, fn, done if on_done is not None else None, failed, wait=wait)

    def _pump(self) -> None:
        if self.closed:
            return
        self.bg.pump()
        self.starter.reap()
        wait = self.bg.oldest_wait()
        if wait is not None and wait[1] >= WAITING_AFTER_S:
            self.status_bar.configure(text=f"waiting: {wait[0]} for {wait[1]:.0f} s (the store is busy or "
                                           f"locked; the window stays usable)   {self.message}")
        else:
            self.status_bar.configure(text=self.message)
        self._pump_id = self.root.after(30, self._pump)

    def set_message(self, text: str) -> None:
        self.message = f"{time.strftime('%H:%M:%S')}  {text}"
        self.status_bar.configure(text=self.message)

    # -- refresh ----------------------------------------------------------------
    def _tick(self) -> None:
        if self.closed:
            return
        self.refresh_status()
        self.refresh_current()
        self._tick_id = self.root.after(int(self.refresh_s * 1000), self._tick)

    def current_slot(self) -> Slot | None:
        try:
            frame = self.notebook.select()
        except tk.TclError:
            return None
        return next((s for s in self.slots if str(s.frame) == frame), None)

    def _nav_selected(self) -> None:
        sel = self.nav.selection()
        slot = next((s for s in self.slots if sel and s.name == sel[0]), None)
        if slot is not None and self.current_slot() is not slot:
            self.notebook.select(slot.frame)

    def _page_changed(self) -> None:
        slot = self.current_slot()
        if slot is not None and self.nav.selection() != (slot.name,):
            self.nav.selection_set(slot.name)
            self.nav.see(slot.name)
        self.refresh_current()

    def refresh_current(self) -> None:
        slot = self.current_slot()
        if slot is not None:
            self.guard(slot, "on_refresh")

    def refresh_status(self) -> None:
        self.run("status", self.client.status, self._show_status,
                 lambda exc: self._show_status({"state": "unavailable", "error": str(exc)}))

    def _show_status(self, doc: dict) -> None:
        self.status_doc = doc
        state = doc.get("state")
        if state == "unavailable":
            self.state_label.configure(text="STORE UNAVAILABLE", foreground=theme.BAD)
            self.state_detail.configure(text=doc.get("error", "")[:200])
        else:
            running = doc["supervisor"]["running"]
            words = {"ok": "RUNNING", "degraded": "DEGRADED", "no_supervisor": "STOPPED"}
            text = words.get(state, state.upper()) + ("  (paused)" if doc.get("paused") else "")
            colour = {"ok": "#7bd88f", "degraded": "#ffc857", "no_supervisor": "#ff8a80"}.get(state, "white")
            self.state_label.configure(text=text, foreground=colour)
            t = doc["tasks"]
            lines = [f"supervisor pid {doc['supervisor']['pid']}" if running else "no supervisor running",
                     _count(sum(1 for a in doc["agents"] if a["status"] in ("idle", "busy")), "worker") + " up",
                     f"pending {t.get('PENDING', 0)}  running {t.get('RUNNING', 0)}",
                     f"waiting on a person {t.get('WAITING_HUMAN', 0)}"]
            if doc["active_alerts"]:
                lines.append(f"{doc['active_alerts']} active alert(s)")
            if not running:
                lines.append("Start to run it")
            self.state_detail.configure(text="\n".join(lines))
            self.buttons["stop"].state(["!disabled"] if running else ["disabled"])
            for k in ("pause", "resume", "drain"):
                self.buttons[k].state(["!disabled"])
        for fn in list(self.status_listeners):
            fn(doc)

    def settings_changed(self, cfg: dict) -> None:
        """fleet.toml was saved: hand every tab and module the new configuration."""
        self.cfg = cfg
        for slot in self.slots:
            self.guard(slot, "apply_settings", cfg)

    def export_module_data(self, name: str, on_done=None) -> bool:
        """Write a module's export_data() to <home>/exports/<name>-<UTC time>.json (the file on a worker thread)."""
        import json

        slot = next((s for s in self.slots if s.name == name), None)
        if slot is None or slot.error is not None:
            return False
        records = self.guard(slot, "export_data")
        if records is None:
            return False
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = os.path.join(self.cfg["home"], "exports", f"{name}-{stamp}.json")

        def write():
            from fleet.atomic import atomic_write_text

            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_text(path, json.dumps(records, indent=2, ensure_ascii=False, default=str) + "\n")
            return path

        self.run("export:" + name, write, on_done or (lambda p: self.set_message(f"{len(records)} record(s) of "
                                                                               f"{name} exported to {p}")))
        return True

    # -- actions --------------------------------------------------------------
    def action(self, key: str, fn, then=None) -> None:
        """A control action on a background thread; its sentence goes to the status bar."""
        self.set_message(f"{key}…")

        def done(text):
            self.set_message(str(text))
            if then is not None:
                then(text)
            self.refresh_status()

        if not self.run("action:" + key, fn, done, lambda exc: self.set_message(f"{key} failed: {exc}"), wait=False):
            self.set_message(f"{key} is already under way")

    def start_fleet(self) -> None:
        def work():
            if self.client.supervisor_pid() is None:
                return self.starter.start(self.client.cfg)["detail"]
            return self.client.control("start")
        self.action("start", work)

    def control(self, kind: str, target: str | None = None) -> None:
        timeout = 300.0 if kind == "drain" else 10.0
        self.action(f"{kind} {target}" if target else kind, lambda: self.client.control(kind, target, timeout))

    def dashboard_url(self) -> str:
        d = self.cfg["dashboard"]
        host = "127.0.0.1" if d["host"] in ("0.0.0.0", "::", "") else d["host"]  # a wildcard bind: browse loopback
        return f"http://{host}:{d['port']}/"

    def report_issue(self, description: str | None = None) -> None:
        """Write a debug report (secrets redacted) with what the operator says
        went wrong: the same function as `lead_client report-issue`."""
        if description is None:
            from tkinter import simpledialog

            description = simpledialog.askstring("Report issue", "What went wrong? (optional)", parent=self.root)
            if description is None:
                return  # cancelled
        self.action("report issue", lambda: "debug report written: {md_path} (id {id})".format(
            **self.client.report_issue(description.strip() or None)))

    def open_dashboard(self) -> None:
        url = self.dashboard_url()
        self.action("open dashboard", lambda: f"opened {url}" if webbrowser.open(url) else
                    f"no browser could be started; open {url} yourself")

    def close(self) -> None:
        if self.closed:
            return
        for slot in self.slots:
            self.guard(slot, "on_close")
        self.closed = True
        for job in (self._pump_id, self._tick_id):
            try:
                self.root.after_cancel(job)
            except tk.TclError:
                pass
        self.bg.close()
        self.client.close()
        self.root.destroy()

    def select(self, name: str) -> bool:
        """Show the tab called `name`; False when there is none shown."""
        slot = next((s for s in self.slots if s.name == name), None)
        if slot is None:
            return False
        self.notebook.select(slot.frame)
        return True
