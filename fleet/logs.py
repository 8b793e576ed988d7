"""Per-process logging: one rotating file per process under the logs directory
(files 0600 in a 0700 folder unless [paths] shared_read).

Every fleet process calls `setup_process_logging(name, cfg)` once; lines carry
the time, level, process name and (when set) the task id being worked on.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time

from .filemodes import make_dir, open_private, shared_read
from .hosts import base_name

_FORMAT = "%(asctime)s %(levelname)-7s %(processname)s%(taskpart)s %(message)s"


class _ContextFilter(logging.Filter):
    """Stamps each record with the process name and the task id its thread
    works on: per thread (a worker may run several tasks at once), and for a
    thread that set none (a skill's own helper thread), the main thread's."""

    def __init__(self, name: str):
        super().__init__()
        self.processname = name
        self._thread = threading.local()
        self._main_task: int | None = None

    @property
    def task_id(self) -> int | None:
        return getattr(self._thread, "task_id", self._main_task)

    @task_id.setter
    def task_id(self, value: int | None) -> None:
        self._thread.task_id = value
        if threading.current_thread() is threading.main_thread():
            self._main_task = value

    def filter(self, record: logging.LogRecord) -> bool:
        record.processname = self.processname
        tid = getattr(record, "task_id", None) or self.task_id
        record.taskpart = f" [task {tid}]" if tid else ""
        return True


_context: _ContextFilter | None = None


class _LogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that, when the file cannot be written (a full
    disk, a lost permission), drops the line and says so on stderr once a
    minute, instead of printing a traceback for every line."""

    _said_at = float("-inf")

    def __init__(self, filename: str, *, shared: bool = False, **kwargs):
        self.shared = shared  # (set first: the base class opens the file)
        super().__init__(filename, **kwargs)

    def _open(self):
        """The file is created 0600 (0644 with [paths] shared_read), never by the umask."""
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,  # noqa: SIM115
                    opener=lambda path, flags: open_private(path, flags, self.shared))

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        if time.monotonic() - self._said_at >= 60:
            self._said_at = time.monotonic()
            try:
                sys.stderr.write(f"fleet: cannot write the log {self.baseFilename}: {exc}; "
                                 "log lines are dropped until it can\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass


def log_path(cfg: dict, name: str) -> str:
    """`<logs>/<name>.log`, by the bare agent name: logs live in this host's
    home, so `coder_1@gpu-box` logs to `coder_1.log`."""
    return os.path.join(cfg["paths"]["logs"], f"{base_name(name)}.log")


def setup_process_logging(name: str, cfg: dict, *, to_stderr: bool = False,
                          max_bytes: int = 5 * 1024 * 1024, backups: int = 3) -> logging.Logger:
    """Log to `<logs>/<name>.log` (rotating); optionally also to stderr."""
    global _context
    shared = shared_read(cfg)
    make_dir(cfg["paths"]["logs"], shared)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    _context = _ContextFilter(name)
    handler = _LogFile(log_path(cfg, name), shared=shared, maxBytes=max_bytes, backupCount=backups,
                       encoding="utf-8")
    handlers: list[logging.Handler] = [handler]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(logging.Formatter(_FORMAT))
        h.addFilter(_context)
        root.addHandler(h)
    root.setLevel(logging.INFO)
    return logging.getLogger(name)


def current_context() -> tuple[int | None, str | None]:
    """(task id, process name) this thread is working under, as its log lines
    show them; (None, None) outside a fleet process."""
    if _context is None:
        return None, None
    return _context.task_id, _context.processname


def set_current_task(task_id: int | None) -> None:
    """Tag every following log line of this thread with `task_id`."""
    if _context is not None:
        _context.task_id = task_id


def tail_lines(path: str, n: int, *, end: int | None = None, max_bytes: int = 8 << 20) -> list[str]:
    """The last `n` lines of a log (of its first `end` bytes), reading backwards
    in blocks so a big log costs little; at most `max_bytes` are read."""
    if n <= 0:
        return []
    with open(path, "rb") as fh:
        if end is None:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
        data, pos = b"", end
        while pos > 0 and data.count(b"\n") <= n and len(data) < max_bytes:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    return data.decode("utf-8", errors="replace").splitlines()[-n:]


def log_without_locks(message: str | None) -> None:
    """Write `message` (if any) straight to the log streams and flush them,
    without the handler locks a stopped thread may hold."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if stream is None:
            continue
        try:
            if message:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                stream.write(f"{stamp} ERROR   {message}\n")
            stream.flush()
        except (OSError, ValueError):
            pass
