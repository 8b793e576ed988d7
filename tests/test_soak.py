"""scripts/soak.py end to end, small: a real supervisor and workers under worker
SIGKILLs and one supervisor kill -9 lose no task, complete none twice, and leave
a store whose integrity check is "ok"; the script prints its table and exits 0."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.fakes.fleetproc import REPO

pytestmark = pytest.mark.slow


def table(stdout: str) -> dict[str, str]:
    """{figure: value} from the printed table (columns are 2+ spaces apart)."""
    rows = {}
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("figure "))
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith(("command:", "result:", "fleet home")):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1] if len(cells) > 1 else ""
    return rows


def value(rows: dict[str, str], prefix: str) -> str:
    hits = [v for k, v in rows.items() if k.startswith(prefix)]
    assert len(hits) == 1, f"expected one row starting {prefix!r} in {sorted(rows)}"
    return hits[0]


def test_soak_small_run_loses_nothing(tmp_path):
    tasks = 150
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--tasks", str(tasks), "--workers", "2",
         "--kill-rate", "2/s", "--supervisor-kills", "1", "--max-sleep-ms", "80", "--daemon-rate", "0.05",
         "--seed", "14", "--deadline", "90", "--stall-s", "45", "--dir", str(tmp_path)],
        cwd=str(REPO), capture_output=True, text=True, timeout=180, check=False)
    out = proc.stdout
    assert "Fleet soak:" in out and "figure" in out, f"no table printed\nstdout:\n{out}\nstderr:\n{proc.stderr[-4000:]}"
    rows = table(out)
    why = f"\n{out}\nstderr:\n{proc.stderr[-4000:]}"
    assert value(rows, "tasks enqueued") == f"{tasks:,}", why
    assert value(rows, "lost") == "0", why
    assert value(rows, "completed twice") == "0", why
    assert value(rows, "stuck") == "0", why
    assert value(rows, "store integrity_check()") == "ok", why
    assert value(rows, "supervisor kills") == "1", why
    assert int(value(rows, "worker kills delivered").split(";")[0].replace(",", "")) >= 1, why
    done = int(value(rows, "DONE").replace(",", ""))
    failed = int(value(rows, "FAILED (dead-lettered)").replace(",", ""))
    assert done + failed == tasks, why  # dead-letters are reported, not asserted (being fixed elsewhere)
    assert proc.returncode == 0, why
    assert "result: PASS" in out, why
