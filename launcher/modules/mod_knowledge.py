"""Bundled module: a Knowledge browser. Lists what skills wrote under the
fleet's [paths] knowledge folder, previews a file, and keeps bookmarks as
module data in the store (notes on channel module:knowledge).
"""

from __future__ import annotations

import os
import time
import tkinter as tk
from tkinter import ttk

from launcher.modules import ModuleData, validate_against
from launcher.widgets import ScrolledText, Table

PREVIEW_BYTES = 64 * 1024


class Module:
    NAME = "knowledge"
    LABEL = "Knowledge"
    VERSION = "1.0"
    DEFAULT_ENABLED = True
    DEPENDS_ON: list[str] = []
    DATA_SCHEMA = {"fields": {"path": {"type": "text", "required": True}, "note": {"type": "text"}}}

    def __init__(self, app):
        self.app = app
        self.data = ModuleData(app.client, self.NAME)
        self.bookmarks: list[dict] = []

    def build_tab(self, parent) -> None:
        parent.columnconfigure(0, weight=2)
        parent.columnconfigure(1, weight=3)
        parent.rowconfigure(1, weight=1)
        self.where = ttk.Label(parent, text="", style="Muted.TLabel")
        self.where.grid(row=0, column=0, columnspan=2, sticky="w")
        self.files = Table(parent, [("path", "File", 260), ("size", "Size", 70), ("age", "Modified", 90)], height=18)
        self.files.grid(row=1, column=0, sticky="nsew", pady=(4, 0))
        self.files.bind_select(self.preview)
        self.view = ScrolledText(parent, height=18)
        self.view.grid(row=1, column=1, sticky="nsew", padx=(8, 0), pady=(4, 0))
        self.view.set("Select a file to preview it.")
        bar = ttk.Frame(parent)
        bar.grid(row=2, column=0, columnspan=2, sticky="ew", pady=(6, 0))
        self.note = tk.StringVar()
        ttk.Label(bar, text="Bookmark note").pack(side="left")
        ttk.Entry(bar, textvariable=self.note, width=40).pack(side="left", padx=6)
        ttk.Button(bar, text="Bookmark file", command=self.bookmark).pack(side="left")
        self.marks = ttk.Label(bar, text="", style="Muted.TLabel")
        self.marks.pack(side="left", padx=10)

    def on_refresh(self) -> None:
        root = self.app.client.cfg["paths"]["knowledge"]
        self.app.run("knowledge:list", lambda: self.scan(root), self.show, owner=self)
        self.app.run("knowledge:marks", self.data.records, self.show_marks, owner=self)

    @staticmethod
    def scan(root: str) -> tuple[str, list[tuple[str, int, float]]]:
        out = []
        for dirpath, _dirs, names in os.walk(root):
            for n in names:
                p = os.path.join(dirpath, n)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                out.append((os.path.relpath(p, root), st.st_size, st.st_mtime))
        out.sort(key=lambda x: -x[2])
        return root, out[:1000]

    def show(self, res) -> None:
        root, files = res
        now = time.time()
        self.root = root
        self.where.configure(text=f"{root} · {len(files)} file(s)" if files else
                             f"{root}: nothing yet (skills write reviews, indexes and summaries here)")
        self.files.set_rows([(rel, [rel, f"{size / 1024:.1f} KB", f"{(now - mtime) / 60:.0f} min ago"], None)
                             for rel, size, mtime in files])

    def preview(self, rel) -> None:
        if rel is None:
            return
        path = os.path.join(self.root, rel)

        def read():
            with open(path, "rb") as fh:
                return fh.read(PREVIEW_BYTES).decode("utf-8", errors="replace")

        self.app.run("knowledge:preview", read, self.view.set, owner=self)

    def bookmark(self) -> None:
        rel = self.files.selected()
        if rel is None:
            self.app.set_message("select a knowledge file to bookmark")
            return
        record = {"path": rel, "note": self.note.get()}
        self.app.run("knowledge:bookmark", lambda: self.data.add(record, self.validate_record),
                     lambda _id: self.on_refresh(), owner=self)

    def show_marks(self, records: list[dict]) -> None:
        self.bookmarks = records
        self.marks.configure(text=f"{len(records)} bookmark(s) in the store")

    def on_close(self) -> None:
        pass

    def get_settings(self) -> dict:
        return {}

    def apply_settings(self, cfg: dict) -> None:
        pass

    def export_data(self) -> list[dict]:
        return list(self.bookmarks)

    def validate_record(self, data) -> tuple[bool, str]:
        return validate_against(self.DATA_SCHEMA, data)
