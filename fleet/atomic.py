"""Atomic file replacement: the one way Fleet writes a file that others read
while it changes (hw_state.json, STATUS.md, the secrets file, skill outputs).
A temp file in the same directory is written, fsynced and renamed over the
target, so a reader sees the old or the new content, never a partial one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int | None = None,
                      fsync_dir: bool = False) -> Path:
    """Replace `path` with `text`. `mode` is set before the rename, so the file
    is never visible with looser permissions; `fsync_dir` also makes the rename
    itself durable (where the platform allows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if fsync_dir:
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # not possible on every platform (Windows)
    return path
