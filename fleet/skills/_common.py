"""Shared helpers for skills: safe output paths under knowledge/, atomic writes,
reading input files and folders, strict parsing of model JSON, the network and
offline checks, and the stash that carries a skill's state across a human answer.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleet import atomic
from fleet.fs_guard import READ, WRITE, AccessDenied, guard
from fleet.skills._hitl import APPROVE_WORDS, HUMAN_FIELDS, answer_text  # noqa: F401 (skills import them here)

SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
             ".ruff_cache", ".pytest_cache", ".tox", "build", "dist", ".eggs"}
TEXT_EXTENSIONS = {".txt", ".md", ".rst", ".py", ".json", ".jsonl", ".toml", ".yaml", ".yml",
                   ".csv", ".html", ".htm", ".ini", ".cfg", ".sh", ".js", ".ts", ".sql", ".xml"}
# What "the notes in a folder" means: prose first; other text files only when a
# folder holds no prose (so an index like code_index.jsonl is not "summarised").
PROSE_EXTENSIONS = {".txt", ".md", ".rst", ".html", ".htm"}


class SkillError(Exception):
    """A skill cannot do what it was asked; the message says why and what to do.
    `retryable` tells the worker whether another attempt could succeed (bad input: no)."""

    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ModelOutputError(SkillError):
    """The model's reply could not be used (not the JSON asked for); nothing was written."""

    retryable = True  # another sample from the model may well be usable


# -- names, dates, agents ---------------------------------------------------
def today() -> str:
    """The UTC date used in artifact names (YYYYMMDD)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d")


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def safe_name(text: str, max_len: int = 80) -> str:
    """A file-name-safe slug: letters, digits, '.', '-', '_' only; never empty or '..'."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._-")
    slug = re.sub(r"_+", "_", slug)[:max_len].strip("._-")
    return slug or "unnamed"


def agent_name(payload: dict | None, config: dict | None, log: Any = None) -> str:
    """Who is running the skill: payload["agent"], else the worker process's name
    (its logging context, as the routing layer reads it, or FLEET_AGENT), else "manual"."""
    from fleet.logs import current_context

    candidates = [(payload or {}).get("agent"), current_context()[1], os.environ.get("FLEET_AGENT")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return safe_name(candidate, 40)
    return "manual"


# -- paths ------------------------------------------------------------------
def knowledge_root(config: dict) -> Path:
    try:
        root = Path(config["paths"]["knowledge"])
    except (KeyError, TypeError):
        raise SkillError("config has no [paths] knowledge; load it with fleet.config.load_config()") from None
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def knowledge_path(config: dict, *parts: str) -> Path:
    """A path under knowledge/, made of sanitised parts; refuses anything that
    would escape it, or that the filesystem guard refuses to write."""
    root = knowledge_root(config)
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise SkillError(f"refusing to write outside the knowledge folder: {target}")
    _guarded(target, WRITE)
    return target


def _guarded(path: Path, mode: str) -> bool:
    """The filesystem guard's say on the running skill's access (fleet/fs_guard.py)."""
    try:
        return guard(path, mode)
    except AccessDenied as exc:
        raise SkillError(str(exc)) from None


def is_sensitive(config: dict, path: Path) -> bool:
    """The secrets file, SSH/GPG key folders and .env files: never read into a prompt or an index."""
    p = Path(path).resolve()
    secrets = config["paths"]["secrets"]
    if secrets and p == Path(os.path.expanduser(secrets)).resolve():
        return True
    home = Path(os.path.expanduser("~")).resolve()
    for folder in (".ssh", ".gnupg", ".aws"):
        if p == home / folder or (home / folder) in p.parents:
            return True
    return p.name == ".env" or p.name.startswith(".env.") or p.name == "dashboard_token"


def resolve_input(config: dict, value: str, *, must_exist: bool = True, kind: str = "path") -> Path:
    """An input path: absolute, or relative to the fleet home."""
    if not isinstance(value, str) or not value.strip():
        raise SkillError(f"{kind} must be a non-empty path")
    p = Path(os.path.expanduser(value))
    if not p.is_absolute():
        p = Path(config["home"]) / p
    try:
        p = p.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError on Python 3.11)
        raise SkillError(f"{kind} {value!r} cannot be followed ({exc}); fix or remove the link") from None
    if must_exist and not p.exists():
        raise SkillError(f"{kind} {value!r} does not exist (looked at {p}); give an existing file or folder")
    if p.exists() and not (p.is_file() or p.is_dir()):
        raise SkillError(f"{kind} {value!r} is not a file or folder (a pipe, device or socket), which would "
                         "never end or never answer; give a file or folder")
    if is_sensitive(config, p):
        raise SkillError(f"{kind} {value!r} holds secrets or keys; skills do not read it")
    _guarded(p, READ)
    return p


def display_path(config: dict, path: Path) -> str:
    """A short name for a path: relative to the fleet home or cwd when inside them."""
    for base in (config["home"], os.getcwd()):
        if base:
            try:
                return str(path.resolve().relative_to(Path(base).resolve()))
            except ValueError:
                continue
    return str(path)


# -- writing ----------------------------------------------------------------
def atomic_write_text(path: str | os.PathLike, text: str, **options) -> Path:
    """fleet.atomic.atomic_write_text, after the filesystem guard's say."""
    _guarded(Path(path), WRITE)
    return atomic.atomic_write_text(path, text, **options)


def atomic_write_json(path: Path, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


# -- reading ----------------------------------------------------------------
def read_text(path: Path, max_chars: int | None = None) -> tuple[str, bool]:
    """(text, truncated). Undecodable bytes are replaced, never fatal."""
    _guarded(Path(path), READ)
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            text = fh.read(max_chars + 1 if max_chars else -1)
    except IsADirectoryError:
        raise SkillError(f"{path} is a folder; give a file") from None
    except OSError as exc:
        raise SkillError(f"cannot read {path}: {exc.strerror or exc}") from None
    if max_chars and len(text) > max_chars:
        return text[:max_chars], True
    return text, False


def looks_binary(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"\0" in fh.read(4096)
    except OSError:
        return True


# Larger files under a code or scan root are generated data, not source to read.
MAX_SOURCE_BYTES = 5 << 20
# Files named per run of an external checker (ruff, bandit): a folder would
# make it open what iter_files leaves out, such as a named pipe, and block.
CHECKER_BATCH = 500


def iter_files(root: Path, extensions: Iterable[str] | None = None, *, max_files: int = 100_000,
               max_bytes: int | None = None) -> list[Path]:
    """Regular files under `root` (or `root` itself), sorted, skipping
    VCS/venv/cache folders. Left out: pipes, devices and sockets (reading
    one never ends or blocks for ever), dangling links and link loops, names
    that are not valid text in this locale (they cannot be stored or shown),
    and with `max_bytes` files larger than that."""
    exts = {e.lower() for e in extensions} if extensions else None
    if root.is_file():
        return [root]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if exts is not None and p.suffix.lower() not in exts:
                continue
            if not _usable_file(p, max_bytes):
                continue
            try:
                guard(p, READ)  # a violation let through (enforce = false) is logged and read
            except AccessDenied:
                continue  # refused (logged): the walk goes on without it
            out.append(p)
            if len(out) >= max_files:
                return out
    return out


def _usable_file(p: Path, max_bytes: int | None) -> bool:
    try:
        str(p).encode("utf-8")
        st = p.stat()  # follows links: a loop or a dangling link raises
    except (OSError, UnicodeEncodeError):
        return False
    return stat.S_ISREG(st.st_mode) and (max_bytes is None or st.st_size <= max_bytes)


def read_documents(config: dict, path_value: str, *, max_chars: int, max_files: int = 200) -> list[dict]:
    """A file or a folder of text files -> [{path, name, text, truncated}], total capped at max_chars."""
    root = resolve_input(config, path_value)

    def readable(extensions):
        return [p for p in iter_files(root, None if root.is_file() else extensions, max_files=max_files)
                if not looks_binary(p) and not is_sensitive(config, p)]

    files = readable(PROSE_EXTENSIONS) or readable(TEXT_EXTENSIONS)
    if not files:
        raise SkillError(f"{path_value!r} holds no readable text files ({', '.join(sorted(TEXT_EXTENSIONS))})")
    docs, budget = [], max_chars
    for p in files:
        if budget <= 0:
            break
        text, truncated = read_text(p, budget)
        if p.suffix.lower() in (".html", ".htm"):
            from fleet.skills._web import html_to_text

            text = html_to_text(text)[1]
        budget -= len(text)
        docs.append({"path": str(p), "name": display_path(config, p), "text": text, "truncated": truncated})
    return docs


# -- model output -----------------------------------------------------------


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


# -- modes ------------------------------------------------------------------
def is_offline(config: dict) -> bool:
    fleet = config["fleet"]
    return bool(fleet["offline_mode"] or fleet["air_gap_mode"])


def require_network(config: dict, skill: str, what: str = "") -> None:
    if is_offline(config):
        mode = "air-gap" if config["fleet"]["air_gap_mode"] else "offline"
        raise SkillError(
            f"{mode} mode: {skill} refused{(' (' + what + ')') if what else ''}: it needs the network; "
            "set [fleet] offline_mode = false (and air_gap_mode = false) in fleet.toml to allow it"
        )


def skill_options(config: dict, skill: str) -> dict:
    """The `[skills.<skill>]` table (defaults filled by fleet.config; {} for a
    skill without one)."""
    return dict(config["skills"].get(skill) or {})


# -- state across a human answer ---------------------------------------------
def task_key(payload: dict) -> str:
    """A stable key for a task's request (the payload without the human's answer)."""
    core = {k: v for k, v in payload.items() if k not in HUMAN_FIELDS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:24]


def stash_path(config: dict, skill: str, payload: dict) -> Path:
    return knowledge_path(config, ".pending", safe_name(skill), f"{task_key(payload)}.json")


def save_stash(config: dict, skill: str, payload: dict, state: dict) -> Path:
    return atomic_write_json(stash_path(config, skill, payload), state)


def load_stash(config: dict, skill: str, payload: dict) -> dict | None:
    path = stash_path(config, skill, payload)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return None


def drop_stash(config: dict, skill: str, payload: dict) -> None:
    try:
        stash_path(config, skill, payload).unlink()
    except FileNotFoundError:
        pass


