"""The Hardware tab: the live hw_state.json (read with fleet.hw_state, as the
CLI's `hw`): CPU, RAM and disk bars, VRAM and temperature per GPU, the model
tier and why it changed, the loaded models; a stale state is shown as stale.
"""

from __future__ import annotations

from tkinter import ttk

from fleet.cli.common import fmt_age, fmt_ts

from .. import theme
from ..widgets import Bar, Table
from .base import Tab


class HardwareTab(Tab):
    NAME = "hardware"
    LABEL = "Hardware"

    def build_tab(self, parent) -> None:
        parent.columnconfigure(0, weight=1)
        self.banner = ttk.Label(parent, text="reading hw_state.json…", style="Section.TLabel")
        self.banner.grid(row=0, column=0, sticky="w")
        self.sub = ttk.Label(parent, text="", style="Muted.TLabel", wraplength=1000)
        self.sub.grid(row=1, column=0, sticky="w", pady=(0, 8))
        bars = ttk.LabelFrame(parent, text="Host", padding=8)
        bars.grid(row=2, column=0, sticky="ew")
        self.cpu, self.ram, self.disk = Bar(bars, "CPU"), Bar(bars, "RAM"), Bar(bars, "Disk")
        for b in (self.cpu, self.ram, self.disk):
            b.pack(anchor="w", pady=2)
        self.gpu_box = ttk.LabelFrame(parent, text="GPUs", padding=8)
        self.gpu_box.grid(row=3, column=0, sticky="ew", pady=(8, 0))
        self.gpu_bars: list[tuple[ttk.Label, Bar, Bar]] = []
        tier = ttk.LabelFrame(parent, text="Model tier", padding=8)
        tier.grid(row=4, column=0, sticky="ew", pady=(8, 0))
        self.tier = ttk.Label(tier, text="", style="Section.TLabel")
        self.tier.pack(anchor="w")
        self.reason = ttk.Label(tier, text="", wraplength=1000)
        self.reason.pack(anchor="w")
        ttk.Label(parent, text="Loaded models", style="Section.TLabel").grid(row=5, column=0, sticky="w",
                                                                             pady=(8, 0))
        self.models = Table(parent, [("name", "Model", 260), ("size", "VRAM (MB)", 110), ("until", "Expires", 200)],
                            height=4)
        self.models.grid(row=6, column=0, sticky="nsew", pady=(4, 0))
        parent.rowconfigure(6, weight=1)

    def on_refresh(self) -> None:
        self.run("hw", self.client.hw_state, self.show)

    def show(self, s: dict) -> None:
        stale = bool(s.get("stale"))
        if stale:
            self.banner.configure(text="STALE: " + (s.get("stale_reason") or "no fresh hardware state"),
                                  foreground=theme.BAD)
        else:
            self.banner.configure(text=f"Live · {s.get('source', 'cpu')} · written {fmt_age(s.get('age_s'))} ago",
                                  foreground=theme.OK)
        self.sub.configure(text=f"host {s.get('host') or '-'} · thermal {(s.get('thermal') or {}).get('state')}"
                                + (" · eco mode" if s.get("eco_mode") else ""))
        cpu, mem, disk = s.get("cpu") or {}, s.get("memory") or {}, s.get("disk") or {}
        self.cpu.set(cpu.get("percent"), f"{cpu.get('percent', '-')} % of {cpu.get('count', '?')} cores"
                     if cpu else "no sample", stale=stale)
        self.ram.set(mem.get("percent"), f"{mem.get('used_mb', 0) / 1024:.1f} / {mem.get('total_mb', 0) / 1024:.1f} "
                     f"GiB ({mem.get('percent')} %)" if mem else "no sample", stale=stale)
        self.disk.set(disk.get("percent"), f"{(disk.get('free_mb') or 0) / 1024:.1f} GiB free ({disk.get('percent')} % "
                      "used)" if disk.get("total_mb") else "no sample", stale=stale)
        self._gpus(s.get("gpus") or [], s, stale)
        t = s.get("tier") or {}
        self.tier.configure(text=f"{t.get('name')} — model {t.get('model')}")
        changed = f" (changed {fmt_ts(t['changed_at'])})" if t.get("changed_at") else ""
        self.reason.configure(text=f"why: {t.get('reason') or '-'}{changed}")
        models = (s.get("models") or {})
        loaded = models.get("loaded") or []
        rows = [(str(i), [m.get("name"), m.get("vram_mb") or m.get("size_mb") or "", m.get("expires_at") or ""],
                 None) for i, m in enumerate(loaded)]
        if not rows:
            why = "model server not reachable" if not models.get("server_reachable") else "no model loaded"
            rows = [("none", [why, "", ""], "stale")]
        self.models.set_rows(rows)

    def _gpus(self, gpus: list[dict], s: dict, stale: bool) -> None:
        if len(self.gpu_bars) != max(len(gpus), 1):
            for child in self.gpu_box.winfo_children():
                child.destroy()
            self.gpu_bars = []
            for _ in range(max(len(gpus), 1)):
                label = ttk.Label(self.gpu_box, text="")
                label.pack(anchor="w")
                vram, temp = Bar(self.gpu_box, "  VRAM"), Bar(self.gpu_box, "  Temperature")
                vram.pack(anchor="w")
                temp.pack(anchor="w", pady=(0, 4))
                self.gpu_bars.append((label, vram, temp))
        if not gpus:
            label, vram, temp = self.gpu_bars[0]
            label.configure(text="No GPU found: CPU-only (nvidia-ml-py, ROCm or Apple silicon gives GPU data)")
            vram.set(None, "-")
            temp.set(None, "-")
            return
        limit = (s.get("thermal") or {}).get("limit_c") or (s.get("thermal") or {}).get("gpu_max_sustained_c") or 85
        for (label, vram, temp), g in zip(self.gpu_bars, gpus, strict=True):
            label.configure(text=f"GPU {g.get('index')}: {g.get('name')}")
            total, used = g.get("vram_total_mb"), g.get("vram_used_mb")
            pct = 100.0 * used / total if total and used is not None else None
            vram.set(pct, f"{(used or 0) / 1024:.1f} / {(total or 0) / 1024:.1f} GiB" if total else "unknown",
                     stale=stale)
            tc = g.get("temp_c")
            temp.set(100.0 * tc / limit if tc is not None else None,
                     f"{tc:.0f} °C (limit {limit:.0f} °C)" if tc is not None else "no sensor",
                     warn_at=90, bad_at=100, stale=stale)
