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


class SecretsError(Exception):
    """The secrets file or a key is invalid; the message says what to fix."""


class LooseSecretsPermissions(UserWarning):
    """The secrets file can be read by other users."""


def secrets_path(cfg: dict) -> Path:
    return Path(os.path.expanduser(cfg["paths"]["secrets"]))


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


_ASSIGNMENT = re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=")
_UNBALANCED = ("secrets file has unbalanced quotes ({}); fix it or rewrite the line with "
               "`lead_client.py secret set`")


def _entries(text: str) -> list[tuple[str | None, str]]:
    """The file as consecutive (key or None, raw text) chunks that add up to it
    exactly: an assignment (its quoted value may span lines) or any other line,
    which is kept as it is (comments, `source`, aliases...)."""
    lines = text.splitlines(keepends=True)
    out: list[tuple[str | None, str]] = []
    i = 0
    while i < len(lines):
        match = _ASSIGNMENT.match(lines[i])
        if not match:
            out.append((None, lines[i]))
            i += 1
            continue
        chunk, i = lines[i], i + 1
        while True:
            try:
                shlex.split(chunk, comments=True)
                break
            except ValueError as exc:
                if i >= len(lines):
                    raise SecretsError(_UNBALANCED.format(exc)) from None
                chunk, i = chunk + lines[i], i + 1
        out.append((match.group(1), chunk))
    return out


def _value_of(chunk: str) -> str:
    for token in shlex.split(chunk, comments=True):
        key, sep, value = token.partition("=")
        if sep and _KEY_RE.match(key):
            return value
    return ""


def parse_secrets(text: str) -> dict[str, str]:
    """`export KEY='value'` / `KEY=value` assignments (shell quoting rules);
    every other line is ignored. Raises SecretsError on bad quoting."""
    return {key: _value_of(chunk) for key, chunk in _entries(text) if key is not None}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


_HEADER = "# Fleet secrets (mode 0600). Managed by `lead_client.py secret`; shell-compatible.\n"


def _with_value(text: str, key: str, value: str | None) -> str:
    """`text` with `key` set to `value` (None: removed); every other chunk is
    kept byte for byte, so an operator's comments and other lines survive."""
    entries = _entries(text)
    line = None if value is None else f"export {check_key(key)}={_quote(value)}\n"
    out, placed = [], False
    for k, chunk in entries:
        if k != key:
            out.append(chunk)
        elif line is not None and not placed:
            out.append(line)
            placed = True
    if line is not None and not placed:
        if not out:
            out.append(_HEADER)
        elif not out[-1].endswith("\n"):
            out.append("\n")
        out.append(line)
    return "".join(out)


def render_secrets(values: dict[str, str]) -> str:
    """A fresh secrets file holding `values`."""
    text = ""
    for key in sorted(values):
        text = _with_value(text, key, values[key])
    return text


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SecretsError(f"secrets file {path} is not UTF-8 text; fix or move it, then set the "
                           "secrets again with `lead_client.py secret set KEY -`") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretsError(f"cannot read secrets file {path}: {exc.strerror}; check its owner and mode") from None


def read_secrets(cfg: dict) -> dict[str, str]:
    """Everything in the secrets file ({} when it is absent or in air-gap mode)."""
    if cfg["fleet"]["air_gap_mode"]:
        return {}
    path = secrets_path(cfg)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return {}
    _warn_if_loose(path)
    return parse_secrets(text)


def air_gap_withheld(cfg: dict) -> str | None:
    """Why the secrets file is neither read nor changed (air-gap mode), or None."""
    if not cfg["fleet"]["air_gap_mode"]:
        return None
    return (f"secrets are withheld in air-gap mode ([fleet] air_gap_mode = true in {cfg['config_file']}): "
            f"{secrets_path(cfg)} is neither read nor changed; turn air-gap mode off to use or change them")


def _locked_update(cfg: dict, key: str, value: str | None) -> bool:
    """Set (or with None remove) one key under a file lock; True if the file changed.
    Refused in air-gap mode, whose fleet reads no secret."""
    from filelock import FileLock

    withheld = air_gap_withheld(cfg)
    if withheld:
        raise SecretsError(withheld)
    path = secrets_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=10):
        try:
            text = _read_text(path)
        except FileNotFoundError:
            text = ""
        new = _with_value(text, key, value)
        if new == text:
            return False
        atomic_write_text(path, new, mode=0o600)
    return True


def get_secret(cfg: dict, key: str) -> str | None:
    """The secret's value: the environment first, then the secrets file; None if unset."""
    check_key(key)
    env = os.environ.get(key)
    if env:
        return env
    return read_secrets(cfg).get(key) or None


def set_secret(cfg: dict, key: str, value: str) -> None:
    """Store `value` under `key` (atomic write, mode 0600). Any characters are
    kept; the file's other lines are left exactly as they were."""
    check_key(key)
    if not isinstance(value, str) or value == "":
        raise SecretsError(f"secret {key} needs a non-empty value (use `secret delete {key}` to remove it)")
    if "\0" in value:
        raise SecretsError(f"secret {key} contains a NUL byte, which cannot be stored")
    _locked_update(cfg, key, value)


def delete_secret(cfg: dict, key: str) -> bool:
    """Remove `key` from the file; False when it was not there (nothing changes)."""
    check_key(key)
    return _locked_update(cfg, key, None)


def list_secret_keys(cfg: dict) -> list[str]:
    """Names (never values) of the secrets in the file."""
    return sorted(read_secrets(cfg))
