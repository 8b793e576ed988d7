"""The secrets file (API keys and tokens): reading, atomic 0600 writes, lookups.

Format: one `export KEY='value'` line per secret, shell-compatible (a value's
single quotes are written as '\\'' and newlines stay inside the quotes), so
any character round-trips. The environment overrides the file. In air-gap
mode the file is not read at all. Values are never logged.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
import warnings
from pathlib import Path

from .atomic import atomic_write_text

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_PATH = "~/.secrets"


class SecretsError(Exception):
    """The secrets file or a key is invalid; the message says what to fix."""


class LooseSecretsPermissions(UserWarning):
    """The secrets file can be read by other users."""


def secrets_path(cfg: dict | None) -> Path:
    raw = ((cfg or {}).get("paths") or {}).get("secrets") or _DEFAULT_PATH
    return Path(os.path.expanduser(raw))


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SecretsError(
            f"secret name {key!r} is not valid: use letters, digits and underscores, not starting "
            "with a digit (e.g. ANTHROPIC_API_KEY)"
        )
    return key


def _warn_if_loose(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if os.name == "posix" and mode & 0o077:
        msg = (f"secrets file {path} has mode {mode:o}, readable by others; "
               f"run `chmod 600 {path}`")
        warnings.warn(msg, LooseSecretsPermissions, stacklevel=3)
        log.warning(msg)


def parse_secrets(text: str) -> dict[str, str]:
    """Parse `export KEY='value'` / `KEY=value` lines (shell quoting rules);
    comments and blank lines are ignored. Raises SecretsError on bad quoting."""
    out: dict[str, str] = {}
    lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise SecretsError(f"secrets file has unbalanced quotes ({exc}); fix it or rewrite it with "
                           "`lead_client.py secret set`") from None
    for token in tokens:
        if token == "export":
            continue
        key, sep, value = token.partition("=")
        if not sep or not _KEY_RE.match(key):
            continue  # not an assignment; ignore rather than guess
        out[key] = value
    return out


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def render_secrets(values: dict[str, str]) -> str:
    lines = ["# Fleet secrets (mode 0600). Managed by `lead_client.py secret`; shell-compatible.\n"]
    for key in sorted(values):
        lines.append(f"export {check_key(key)}={_quote(values[key])}\n")
    return "".join(lines)


def read_secrets(cfg: dict | None) -> dict[str, str]:
    """Everything in the secrets file ({} when it is absent or in air-gap mode)."""
    if ((cfg or {}).get("fleet") or {}).get("air_gap_mode"):
        return {}
    path = secrets_path(cfg)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SecretsError(f"cannot read secrets file {path}: {exc.strerror}; check its owner and mode") from None
    _warn_if_loose(path)
    return parse_secrets(text)


def _write_atomic(path: Path, values: dict[str, str]) -> None:
    atomic_write_text(path, render_secrets(values), mode=0o600)


def _locked_update(cfg: dict | None, change) -> dict[str, str]:
    from filelock import FileLock

    path = secrets_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=10):
        try:
            values = parse_secrets(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            values = {}
        values = change(values)
        if values is not None:
            _write_atomic(path, values)
    return values


def get_secret(cfg: dict | None, key: str) -> str | None:
    """The secret's value: the environment first, then the secrets file; None if unset."""
    check_key(key)
    env = os.environ.get(key)
    if env:
        return env
    return read_secrets(cfg).get(key) or None


def has_secret(cfg: dict | None, key: str) -> bool:
    return get_secret(cfg, key) is not None


def set_secret(cfg: dict | None, key: str, value: str) -> None:
    """Store `value` under `key` (atomic write, mode 0600). Any characters are kept."""
    check_key(key)
    if not isinstance(value, str) or value == "":
        raise SecretsError(f"secret {key} needs a non-empty value (use `secret delete {key}` to remove it)")
    if "\0" in value:
        raise SecretsError(f"secret {key} contains a NUL byte, which cannot be stored")

    def change(values):
        values[key] = value
        return values

    _locked_update(cfg, change)


def delete_secret(cfg: dict | None, key: str) -> bool:
    """Remove `key` from the file; False when it was not there (nothing changes)."""
    check_key(key)
    found = []

    def change(values):
        if key not in values:
            return None
        found.append(values.pop(key))
        return values

    _locked_update(cfg, change)
    return bool(found)


def list_secret_keys(cfg: dict | None) -> list[str]:
    """Names (never values) of the secrets in the file."""
    return sorted(read_secrets(cfg))
