"""Shared plumbing of the lead_client commands: exit codes, errors, the lazily
opened config and store, JSON / plain / rich output, time formatting and the
`--wait` loop. Imports stay light: rich is loaded only for a terminal.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEGRADED = 3
EXIT_NO_SUPERVISOR = 69
EXIT_WAIT_TIMEOUT = 99
EXIT_UNAVAILABLE = 69  # (EX_UNAVAILABLE: also the shared store's server cannot be reached)
EXIT_CONFIG = 78

SENDER = "operator"


class CliError(Exception):
    """A failure reported as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """Bad arguments found after parsing (unknown skill, bad JSON...): exit 2 with the usage line."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


class Ctx:
    """What a command handler gets: parsed args plus the config and store, opened on first use."""

    def __init__(self, args, actor: str = SENDER):
        self.args = args
        self.actor = actor  # who the store records as acting: "operator" (the CLI), "launcher"
        self._cfg: dict | None = None
        self._store = None

    @property
    def cfg(self) -> dict:
        if self._cfg is None:
            from fleet.config import ConfigError, load_showing_warnings

            try:
                self._cfg = load_showing_warnings(getattr(self.args, "home", None))
            except ConfigError as exc:
                raise CliError(f"configuration error: {exc}", EXIT_CONFIG) from None
        return self._cfg

    @property
    def store(self):
        if self._store is None:
            from fleet.db import open_store

            self._store = open_store_or_exit(self.cfg, open_store)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def supervisor_pid(self) -> int | None:
        return supervisor_pid(self.cfg)

    def require_supervisor(self, what: str) -> int:
        pid = self.supervisor_pid()
        if pid is None:
            raise CliError(
                f"{what} needs the supervisor, and none is running for {self.cfg['home']}; "
                "start it with `python fleet/supervisor.py` (or `systemctl --user start "
                f"{self.cfg['service']['name']}` when installed as a service)",
                EXIT_NO_SUPERVISOR,
            )
        return pid


def open_store_or_exit(cfg: dict, open_store):
    """The configured store; on a PostgreSQL store that cannot be reached a
    CliError: exit 78 for a DSN that is wrong as written (fix fleet.toml or
    FLEET_STORE_DSN), 69 for a server that is down or refuses the login."""
    from fleet.store.errors import InvalidInput, StoreUnavailable

    try:
        return open_store(cfg)
    except (InvalidInput, StoreUnavailable) as exc:
        if cfg["store"]["backend"] != "postgresql":
            raise
        code = EXIT_CONFIG if isinstance(exc, InvalidInput) else EXIT_UNAVAILABLE
        raise CliError(f"cannot open the PostgreSQL store: {exc}", code) from None


def supervisor_pid(cfg: dict) -> int | None:
    """PID of the supervisor running for this fleet home, or None."""
    from fleet.supervisor import running_supervisor_pid

    return running_supervisor_pid(cfg)


# -- output ---------------------------------------------------------------
def use_rich() -> bool:
    """Rich tables only on a terminal and when NO_COLOR is unset."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


_held: list | None = None  # --json documents held back until the command's outcome is known


def hold_json_output() -> None:
    """From now on print_json keeps its documents until `release_json_output`,
    so a command that fails after printing its document (say `dispatch --wait`
    timing out) can give one document carrying both its data and its error."""
    global _held
    _held = []


def release_json_output(error: str | None = None, code: int | None = None) -> None:
    """Print the held documents; with `error`, the outcome `{"error", "exit"}`
    joins the last one (a dict), or is printed alone when there is none."""
    global _held
    docs, _held = _held or [], None
    if error is not None:
        outcome = {"error": error, "exit": code}
        if docs and isinstance(docs[-1], dict):
            docs[-1] = {**docs[-1], **outcome}
        else:
            docs.append(outcome)
    for doc in docs:
        print_json(doc)


def print_json(data: Any) -> None:
    if _held is not None:
        _held.append(data)
        return
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n")


def print_table(headers: list[str], rows: Iterable[Iterable[Any]], *, title: str | None = None) -> None:
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    if use_rich():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:  # rich is optional for output: fall back to plain text
            Console = None
    else:
        Console = None
    if Console is not None:
        table = Table(title=title, header_style="bold")
        for h in headers:
            table.add_column(h)
        for r in rows:
            table.add_row(*r)
        Console().print(table)
        return
    if title:
        print(title)
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c.replace("\n", " ")))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    print(line)
    for r in rows:
        print("  ".join(c.replace("\n", " ").ljust(w) for c, w in zip(r, widths)).rstrip())


def print_kv(pairs: Iterable[tuple[str, Any]]) -> None:
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        print(f"{k.ljust(width)}  {'' if v is None else v}")


def fmt_ts(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# -- input ----------------------------------------------------------------
def parse_iso(value: str, what: str) -> float:
    """An ISO date or date-time (UTC when no zone is given) as epoch seconds."""
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not an ISO date or date-time (e.g. 2026-01-31 or 2026-01-31T12:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def read_value(value: str, *, b64: bool = False, what: str = "value") -> str:
    """`-` reads stdin (one trailing newline dropped); --b64 decodes base64 (UTF-8)."""
    if value == "-":
        value = sys.stdin.read()
        if value.endswith("\n") and not b64:
            value = value[:-1]
    if b64:
        import base64
        import binascii

        try:
            value = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{what} is not valid base64 of UTF-8 text ({exc})") from None
    return value


def parse_json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                         "quote it in single quotes, or use --b64") from None
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply to be a task's JSON") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object like '{{\"path\": \".\"}}', got {type(value).__name__}")
    return value


# -- waiting on a task ----------------------------------------------------
def wait_for_task(store, task_id: int, timeout: float | None, *, progress: bool,
                  on_tick: Callable[[Any, float], None] | None = None):
    """Poll until the task is DONE / FAILED / CANCELLED; None on timeout.
    Shows elapsed time and state on a terminal (stderr), and says once on
    stderr, each time the task starts waiting for a person, what it asks and
    how to answer."""
    from fleet.db import TERMINAL_STATUSES

    start = time.monotonic()
    delay = 0.05
    last_len = 0
    told_waiting = False
    try:
        while True:
            task = store.require(task_id)
            elapsed = time.monotonic() - start
            if task.status == "WAITING_HUMAN" and not told_waiting:
                if last_len:
                    sys.stderr.write("\n")
                    last_len = 0
                sys.stderr.write(waiting_for_answer(task) + "\n")
                sys.stderr.flush()
            told_waiting = task.status == "WAITING_HUMAN"
            if progress:
                where = f" on {task.worker}" if task.worker and task.status == "RUNNING" else ""
                line = f"\rtask {task_id}: {task.status}{where}  {elapsed:5.1f}s"
                sys.stderr.write(line.ljust(last_len))
                sys.stderr.flush()
                last_len = len(line)
            if task.status in TERMINAL_STATUSES:
                return task
            if timeout is not None and elapsed >= timeout:
                return None
            time.sleep(min(delay, max(0.01, (timeout - elapsed) if timeout is not None else delay)))
            delay = min(delay * 1.5, 0.5)
    finally:
        if progress and last_len:
            sys.stderr.write("\n")
            sys.stderr.flush()


def waiting_for_answer(task) -> str:
    """One line: the task waits for a person, what it asks, how to answer."""
    q = task.question if isinstance(task.question, dict) else {}
    options = q.get("options") or []
    asks = f": {q['question']}" if q.get("question") else ""
    choose = f" (one of: {', '.join(map(str, options))})" if options else ""
    return (f"task {task.id} is waiting for a person's answer{asks}{choose}; answer with "
            f"`lead_client.py hitl respond {task.id} ANSWER` (or on the dashboard's Approvals page); "
            "still waiting")


# -- argparse value types -------------------------------------------------
def positive_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_WHOLE:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_WHOLE}, got {text!r}")
    return value


MAX_WHOLE = 2**63 - 1  # the largest id or count the store holds


def priority(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10:
        raise argparse.ArgumentTypeError(f"priority must be a whole number from 1 to 10, got {text!r}")
    return value
