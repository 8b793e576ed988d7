"""Test helpers for the dashboard: an app on a temp fleet home (with the fake
test skills), Bearer headers, a free loopback port, and a real dashboard
process (waitress) started and stopped around a test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes.fleetproc import REPO, env_for, stop, wait_until, write_config

__all__ = ["REPO", "DashboardProcess", "SSEReader", "bearer", "free_port", "make_app", "wait_until", "write_config"]


def make_app(home: Path, *, host: str | None = None, read_only: bool | None = None, **sections):
    """(app, cfg, store) for a fleet home with the fake skills configured."""
    from fleet.dashboard import create_app
    from fleet.db import open_store

    cfg = write_config(home, **sections)
    store = open_store(cfg)
    app = create_app(cfg, store=store, host=host, read_only=read_only)
    app.testing = True
    return app, cfg, store


def bearer(app) -> dict:
    return {"Authorization": f"Bearer {app.extensions['fleet'].token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DashboardProcess:
    """`python fleet/dashboard.py --port N` in a fleet home, as a real process."""

    def __init__(self, home: Path, port: int | None = None, *extra: str):
        self.home = home
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> DashboardProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "fleet" / "dashboard.py"), "--port", str(self.port), *self.extra],
            cwd=str(REPO), env=env_for(self.home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wait_until(self._answers, timeout=30, step=0.1, what=f"the dashboard on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            out, err = self.proc.communicate()
            raise AssertionError(f"dashboard exited with {self.proc.returncode}: {err or out}")
        try:
            return httpx.get(self.base + "/api/session", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def token(self) -> str:
        return (self.home / "dashboard.token").read_text().strip()

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=15)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SSEReader:
    """Parses an httpx streaming SSE response; `until(pred)` reads events
    (comments kept as {"comment": text}) until `pred(all events so far)`."""

    def __init__(self, response):
        self.lines = response.iter_lines()
        self.events: list[dict] = []

    def until(self, pred, timeout: float = 15.0) -> list[dict]:
        if pred(self.events):
            return self.events
        current: dict = {}
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if line == "":
                if current:
                    self.events.append(current)
                    current = {}
            elif line.startswith(":"):
                self.events.append({"comment": line[1:].strip()})
            else:
                field, _, value = line.partition(":")
                current[field] = value.removeprefix(" ")
                continue
            if pred(self.events):
                return self.events
            if time.monotonic() > deadline:
                raise AssertionError(f"SSE condition not met within {timeout} s; got {self.events}")
        raise AssertionError(f"SSE stream ended early; got {self.events}")
