"""File modes of what the fleet writes that may hold secrets (the database, its
WAL and shared-memory files, the logs): 0600 files in 0700 folders, unless
`[paths] shared_read = true` lets other local users read them (0644 / 0755).
"""

from __future__ import annotations

import os

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
SHARED_FILE, SHARED_DIR = 0o644, 0o755


def shared_read(cfg: dict | None) -> bool:
    return bool(cfg and cfg.get("paths", {}).get("shared_read"))


def file_mode(shared: bool) -> int:
    return SHARED_FILE if shared else PRIVATE_FILE


def dir_mode(shared: bool) -> int:
    return SHARED_DIR if shared else PRIVATE_DIR


def tighten(path: str | os.PathLike, mode: int) -> None:
    """Take away every permission bit of an existing `path` beyond `mode` (never
    adds any). A file that is gone, or owned by someone else, is left as it is."""
    try:
        current = os.stat(path).st_mode & 0o777
        if current & ~mode:
            os.chmod(path, current & mode)
    except OSError:
        pass


def make_dir(path: str | os.PathLike, shared: bool) -> None:
    """Create a folder of the fleet's own (0700, or 0755 when shared), and
    tighten one that exists with looser bits unless shared."""
    os.makedirs(path, mode=dir_mode(shared), exist_ok=True)
    if not shared:
        tighten(path, PRIVATE_DIR)


def open_private(path: str | os.PathLike, flags: int, shared: bool) -> int:
    """os.open with the fleet's file mode (for `opener=`); an existing file is
    tightened when not shared."""
    fd = os.open(path, flags, file_mode(shared))
    if not shared:
        try:
            current = os.fstat(fd).st_mode & 0o777
            if current & ~PRIVATE_FILE:
                os.fchmod(fd, current & PRIVATE_FILE)
        except OSError:
            pass
    return fd
