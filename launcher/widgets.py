"""Small widgets the tabs share: a scrolled table (ttk.Treeview), a labelled
bar drawn on a canvas, and a scrolled read-only text. Display only.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from . import theme


class Table(ttk.Frame):
    """A Treeview with headings and a vertical scrollbar; rows keyed by iid."""

    def __init__(self, parent, columns: list[tuple[str, str, int]], height: int = 10, **kw):
        super().__init__(parent, **kw)
        self.tree = ttk.Treeview(self, columns=[c[0] for c in columns], show="headings", height=height,
                                 selectmode="browse")
        for cid, heading, width in columns:
            self.tree.heading(cid, text=heading, anchor="w")
            self.tree.column(cid, width=width, minwidth=40, anchor="w", stretch=True)
        sb = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=sb.set)
        self.tree.grid(row=0, column=0, sticky="nsew")
        sb.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        for state, colour in theme.STATE_COLOURS.items():
            self.tree.tag_configure(state, foreground=colour)

    def set_rows(self, rows: list[tuple[str, list, str | None]]) -> None:
        """Replace the rows [(iid, values, tag)], keeping the selection when it survives."""
        selected = self.selected()
        self.tree.delete(*self.tree.get_children())
        for iid, values, tag in rows:
            self.tree.insert("", "end", iid=iid, values=["" if v is None else v for v in values],
                             tags=(tag,) if tag else ())
        if selected is not None and self.tree.exists(selected):
            self.tree.selection_set(selected)

    def selected(self) -> str | None:
        sel = self.tree.selection()
        return sel[0] if sel else None

    def bind_select(self, fn) -> None:
        self.tree.bind("<<TreeviewSelect>>", lambda _e: fn(self.selected()))


class Bar(ttk.Frame):
    """`label  [#####.....]  text`: a value from 0 to 100 drawn on a canvas."""

    def __init__(self, parent, label: str, width: int = 360, **kw):
        super().__init__(parent, **kw)
        ttk.Label(self, text=label, width=18).pack(side="left")
        self.canvas = tk.Canvas(self, width=width, height=20, background="#e4e7eb", highlightthickness=0)
        self.canvas.pack(side="left", padx=6)
        self.text = ttk.Label(self, text="", width=34)
        self.text.pack(side="left")
        self.width = width

    def set(self, pct: float | None, text: str, *, warn_at: float = 80.0, bad_at: float = 95.0,
            stale: bool = False) -> None:
        self.canvas.delete("all")
        if pct is not None:
            pct = max(0.0, min(100.0, float(pct)))
            colour = theme.STALE if stale else theme.BAD if pct >= bad_at else theme.WARN if pct >= warn_at \
                else theme.OK
            self.canvas.create_rectangle(0, 0, self.width * pct / 100.0, 20, fill=colour, width=0)
        self.text.configure(text=text)


class ScrolledText(ttk.Frame):
    """A read-only tk.Text with a scrollbar."""

    def __init__(self, parent, height: int = 10, width: int = 30, **kw):
        super().__init__(parent, **kw)
        self.text = tk.Text(self, height=height, width=width, wrap="word", relief="flat", background=theme.PANEL,
                            foreground=theme.TEXT, padx=6, pady=4, font="TkFixedFont")
        sb = ttk.Scrollbar(self, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=sb.set, state="disabled")
        self.text.grid(row=0, column=0, sticky="nsew")
        sb.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)

    def set(self, content: str, *, keep_end: bool = False) -> None:
        at_end = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        self.text.insert("1.0", content)
        self.text.configure(state="disabled")
        if keep_end and at_end:
            self.text.see("end")

    def get(self) -> str:
        return self.text.get("1.0", "end-1c")
