"""Test helpers for lead_client: run it as a real subprocess against a temp
fleet home, parse --json output, and build homes with the fake skills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = str(REPO / "fleet" / "lead_client.py")


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as exc:
            raise AssertionError(f"stdout is not JSON ({exc}):\n{self.out}\nstderr:\n{self.err}") from None

    def __repr__(self) -> str:
        return f"<rc={self.rc} out={self.out[-800:]!r} err={self.err[-800:]!r}>"


def cli(home: Path, *args: str, input: str | None = None, env: dict | None = None, timeout: float = 60) -> Result:
    """`python fleet/lead_client.py ARGS` with FLEET_HOME=home (stdout not a TTY)."""
    e = dict(os.environ)
    e["FLEET_HOME"] = str(home)
    e["PYTHONPATH"] = str(REPO)
    e.pop("FLEET_DB", None)
    e.update(env or {})
    proc = subprocess.run([sys.executable, CLI, *args], cwd=str(REPO), env=e, input=input,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return Result(proc)
