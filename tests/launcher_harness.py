"""Harness for the launcher tests: a real Xvfb display, the real Tk window on
a real fleet home, a loop that lets Tk run while a test waits, and PNG
screenshots of the window (tests/fakes/x11_shot.py) kept for a person to look at.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_system_part

SHOTS_ENV = "LAUNCHER_SCREENSHOTS"  # a folder to keep the screenshots in (default: pytest's tmp dir)


def tk_available() -> bool:
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return False
    return True


class Display:
    """An Xvfb server at 1280x800 on a free display number, one per test
    process. It must outlive every Tk interpreter of the process (Tk keeps its
    X connection after its windows close, and a lost connection ends the
    process), so it is never stopped by a test: on Linux the kernel sends it
    SIGTERM when this process ends (PR_SET_PDEATHSIG), elsewhere atexit does."""

    _shared: Display | None = None

    def __init__(self):
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24",
                                      "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        os.close(write_fd)
        with os.fdopen(read_fd) as fh:
            number = fh.readline().strip()
        if not number:
            self.proc.kill()
            raise RuntimeError("Xvfb did not report a display number")
        self.name = f":{number}"
        if not sys.platform.startswith("linux"):
            atexit.register(self.proc.terminate)

    @classmethod
    def shared(cls) -> Display:
        if cls._shared is None or cls._shared.proc.poll() is not None:
            cls._shared = cls()
        return cls._shared


def _die_with_parent() -> None:
    """In the Xvfb child before exec: SIGTERM when the test process dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def require_display_parts() -> None:
    require_system_part(shutil.which("Xvfb") is not None, "Xvfb (a virtual X display for the Tk tests)",
                        "apt install xvfb")
    require_system_part(tk_available(), "Python's tkinter", "apt install python3-tk")


class Driver:
    """Drives the real App: lets Tk process events while waiting for a condition."""

    def __init__(self, app, display: str, shots: Path):
        self.app = app
        self.root = app.root
        self.display = display
        self.shots = shots

    def pump(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.root.update()
            time.sleep(0.01)

    def until(self, predicate, timeout: float = 20.0, what: str = "condition", detail=None):
        end = time.monotonic() + timeout
        while True:
            self.root.update()
            value = predicate()
            if value:
                return value
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; status bar: "
                                     f"{self.app.status_bar.cget('text')!r}"
                                     + (f"; {detail()!r}" if detail is not None else ""))
            time.sleep(0.02)

    def tab(self, name: str):
        assert self.app.select(name), f"no tab {name}"
        self.pump(0.1)
        self.app.refresh_current()
        slot = next(s for s in self.app.slots if s.name == name)
        return slot.obj

    def idle_bg(self, timeout: float = 20.0) -> None:
        self.until(lambda: self.app.bg.oldest_wait() is None, timeout, "background work to finish")
        self.pump(0.05)

    def shot(self, name: str) -> Path:
        from tests.fakes import x11_shot

        self.pump(0.2)
        return x11_shot.screenshot(self.root, self.display, self.shots / f"{name}.png")


def shots_dir(tmp_path_factory) -> Path:
    where = os.environ.get(SHOTS_ENV)
    path = Path(where) if where else tmp_path_factory.getbasetemp() / "launcher-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def display():
    require_display_parts()
    d = Display.shared()
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = d.name
    try:
        yield d
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old


@pytest.fixture(autouse=True)
def free_windows_on_the_tk_thread():
    """After each test (its locals gone), collect the windows it closed here,
    on the main thread, before any worker thread's collection finds them."""
    yield
    import gc

    gc.collect()


def open_launcher(home: Path, display, tmp_path_factory, refresh_s: float = 0.3) -> Driver:
    import gc
    import tkinter as tk

    from launcher.app import App

    # A closed window of an earlier test may still sit in reference cycles. Free
    # it here, on the Tk thread: if the cyclic collector ran on one of the new
    # window's worker threads, tkinter's Variable.__del__ would call into Tcl
    # from that thread and wait for a main loop that never serves it.
    gc.collect()
    from launcher.client import FleetClient

    root = tk.Tk()
    app = App(root, FleetClient(str(home)), refresh_s=refresh_s)
    return Driver(app, display.name, shots_dir(tmp_path_factory))


def close_launcher(driver: Driver) -> None:
    """Close the window; stop the supervisor the launcher itself started (only
    that one); free the window's objects here, on the Tk thread (see open_launcher)."""
    import gc

    app = driver.app
    if app is None:
        return
    started = app.starter.started
    if not app.closed:
        app.close()
    if started is not None and started.poll() is None:
        started.terminate()
        try:
            started.wait(30)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait(5)
    driver.app = driver.root = None
    del app
    gc.collect()
