"""The launcher's look: one ttk theme (clam, recoloured), its fonts and the
colours that mean something (ok, warning, bad, stale). Nothing but styling.
"""

from __future__ import annotations

from tkinter import font as tkfont, ttk

BG = "#f4f5f7"
PANEL = "#ffffff"
SIDEBAR = "#1f2933"
SIDEBAR_TEXT = "#e4e7eb"
ACCENT = "#2f6fdf"
TEXT = "#1f2933"
MUTED = "#616e7c"
OK = "#2e8540"
WARN = "#c77700"
BAD = "#c62828"
STALE = "#9aa5b1"
STATE_COLOURS = {"running": OK, "ok": OK, "up": OK, "idle": OK, "busy": ACCENT, "degraded": WARN,
                 "paused": WARN, "starting": WARN, "stopped": BAD, "no_supervisor": BAD, "lost": BAD,
                 "flapping": BAD, "parked": BAD, "missing": BAD, "stale": STALE, "waiting": STALE}


def apply(root) -> ttk.Style:
    """Set fonts and the ttk styles used by every tab."""
    base = tkfont.nametofont("TkDefaultFont")
    base.configure(size=10)
    for name in ("TkTextFont", "TkMenuFont", "TkHeadingFont"):
        tkfont.nametofont(name).configure(size=10)
    tkfont.nametofont("TkFixedFont").configure(size=10)
    root.configure(background=BG)
    style = ttk.Style(root)
    style.theme_use("clam")
    style.configure(".", background=BG, foreground=TEXT, font=base)
    style.configure("TFrame", background=BG)
    style.configure("Panel.TFrame", background=PANEL)
    style.configure("TLabel", background=BG, foreground=TEXT)
    style.configure("Muted.TLabel", foreground=MUTED)
    style.configure("Title.TLabel", font=(base.actual("family"), 13, "bold"))
    style.configure("Section.TLabel", font=(base.actual("family"), 11, "bold"))
    style.configure("TLabelframe", background=BG)
    style.configure("TLabelframe.Label", background=BG, foreground=TEXT, font=(base.actual("family"), 10, "bold"))
    style.configure("TButton", padding=(10, 4))
    style.configure("Accent.TButton", background=ACCENT, foreground="white")
    style.map("Accent.TButton", background=[("active", "#2459b8"), ("disabled", "#9fb7e8")])
    style.configure("TNotebook", background=BG, borderwidth=0)
    style.configure("TNotebook.Tab", padding=(14, 6))
    style.map("TNotebook.Tab", background=[("selected", PANEL)], foreground=[("selected", ACCENT)])
    style.configure("Treeview", rowheight=24, background=PANEL, fieldbackground=PANEL)
    style.configure("Treeview.Heading", font=(base.actual("family"), 10, "bold"))
    style.configure("Sidebar.TFrame", background=SIDEBAR)
    style.configure("Sidebar.TLabel", background=SIDEBAR, foreground=SIDEBAR_TEXT)
    style.configure("SidebarTitle.TLabel", background=SIDEBAR, foreground="white",
                    font=(base.actual("family"), 14, "bold"))
    style.configure("SidebarState.TLabel", background=SIDEBAR, foreground="white",
                    font=(base.actual("family"), 12, "bold"))
    style.configure("Sidebar.TButton", padding=(2, 5))
    style.configure("Nav.Treeview", background=SIDEBAR, fieldbackground=SIDEBAR, foreground=SIDEBAR_TEXT,
                    rowheight=26, borderwidth=0, font=(base.actual("family"), 11))
    style.layout("Nav.Treeview", [("Nav.Treeview.treearea", {"sticky": "nswe"})])
    style.map("Nav.Treeview", background=[("selected", ACCENT)], foreground=[("selected", "white")])
    style.configure("Status.TLabel", background="#e4e7eb", foreground=TEXT, padding=(8, 3))
    style.layout("Pages.TNotebook.Tab", [])  # pages without a tab strip: the sidebar lists them
    style.configure("Pages.TNotebook", background=BG, borderwidth=0, tabmargins=0)
    return style
