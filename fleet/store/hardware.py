"""Store mixin for hardware history: downsampled hw samples (one a minute by
default, pruned past a retention window) for the dashboard's sparklines.
The hardware supervisor writes them; everyone else only reads."""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidInput
from .values import dumps, now

_COLUMNS = ("cpu_pct", "mem_pct", "gpu_temp_c", "gpu_util_pct", "vram_used_mb", "vram_total_mb", "power_w")


class HardwareMixin:
    """hw_samples: one row per downsampled interval."""

    def record_hw_sample(self, sample: dict[str, Any], *, ts: float | None = None,
                         retention_s: float | None = 86400.0) -> None:
        """Store one sample ({cpu_pct, mem_pct, gpu_temp_c, gpu_util_pct, vram_used_mb,
        vram_total_mb, power_w, tier, thermal_state, gpus}) and prune rows older
        than `retention_s`. Unknown numeric values are None."""
        if not isinstance(sample, dict):
            raise InvalidInput("a hardware sample must be a dict")
        values = []
        for col in _COLUMNS:
            v = sample.get(col)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InvalidInput(f"hardware sample field {col} must be a number or null, got {v!r}")
            values.append(None if v is None else float(v))
        tier = sample.get("tier")
        thermal = sample.get("thermal_state")
        detail = dumps(sample.get("gpus") or [], "hardware sample gpus")
        ts = now() if ts is None else float(ts)
        with self._write() as conn:
            conn.execute(
                f"""INSERT INTO hw_samples (ts, {', '.join(_COLUMNS)}, tier, thermal_state, gpus, host)
                    VALUES (?, {', '.join('?' for _ in _COLUMNS)}, ?, ?, ?, ?)""",
                (ts, *values, tier, thermal, detail, self.host),
            )
            if retention_s is not None:
                conn.execute("DELETE FROM hw_samples WHERE ts < ?", (ts - retention_s,))

    def hw_samples(self, *, since: float | None = None, until: float | None = None,
                   limit: int = 1440, host: str | None = None) -> list[dict]:
        """Samples oldest first (the newest `limit` in the window), of one
        host's hardware when `host` is given (rows from before hosts were
        recorded count as every host's)."""
        clauses, params = [], []
        if host is not None:
            clauses.append("(host = ? OR host IS NULL)")
            params.append(host)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        if until is not None:
            clauses.append("ts < ?")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn().execute(
            f"SELECT * FROM (SELECT * FROM hw_samples {where} ORDER BY ts DESC LIMIT ?) AS newest ORDER BY ts",
            (*params, int(limit)),
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["gpus"] = json.loads(d["gpus"]) if d.get("gpus") else []
            out.append(d)
        return out
