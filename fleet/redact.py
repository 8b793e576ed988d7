"""Keeping secret values out of what Fleet shows or writes for people: the
`Redactor` (every known secret value: secrets file, secret-looking environment
variables, provider keys, passwords in URLs; blanked out of any text), and
`redact_config` for a config snapshot. Used by the dashboard's responses and
by debug reports (fleet/debug_report.py).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from typing import Any

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|DSN)", re.IGNORECASE)
REDACTED = "[redacted]"
# Secret-shaped text whose value no list knows (a key pasted into a log line):
# `name=value` / `name: value` for names ending in a secret word (so
# `GITHUB_TOKEN=...` goes, `max_tokens: 1024` stays), Bearer tokens,
# provider key prefixes, and user:password@ in URLs.
_SHAPES = (
    (re.compile(r"(?i)\b([\w.-]*(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|token|secret|"
                r"password|passwd|credentials?))(\s*[=:]\s*|\"\s*:\s*\")(?!\[redacted\])([^\s\"',;&]+)"),
     r"\1\2" + REDACTED),
    (re.compile(r"(?i)\b(Bearer|Basic)\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\b(sk-(?:ant-)?|ghp_|gho_|xox[abp]-|AKIA)[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), r"\1:" + REDACTED + "@"),
)

# Config keys whose names look secret but hold names and paths, not values.
_NOT_SECRET_SUFFIXES = ("_env", "_file", "_path", "_dir")

log = logging.getLogger("fleet.redact")


def scrub_shapes(text: str) -> str:
    """`text` with secret-shaped substrings blanked (see _SHAPES)."""
    for pattern, repl in _SHAPES:
        text = pattern.sub(repl, text)
    return text


class Redactor:
    """Knows every secret value (the `extra` values such as the dashboard
    token, the secrets file, secret-looking environment variables, provider
    keys, passwords in server URLs) and blanks them out of outgoing text. The
    values are re-read at most every 5 s."""

    MIN_LEN = 8

    def __init__(self, cfg: dict, *extra: str):
        self.cfg = cfg
        self.extra = [v for v in extra if v]
        self._values: list[str] = []
        self._loaded_at = -1e9
        self._lock = threading.Lock()

    def _collect(self) -> list[str]:
        values = set(self.extra)
        for name, value in os.environ.items():
            if SECRET_NAME.search(name) and value:
                values.add(value)
        for prov in self.cfg.get("providers", {}).values():
            env_name = prov.get("api_key_env")
            if env_name and os.environ.get(env_name):  # a provider's key under any variable name
                values.add(os.environ[env_name])
            password = urllib.parse.urlsplit(prov.get("base_url") or "").password
            if password:  # credentials written into a server URL
                values.add(password)
        dsn_password = urllib.parse.urlsplit(self.cfg.get("store", {}).get("dsn") or "").password
        if dsn_password:
            values.add(dsn_password)
        from fleet import secret_file as mod

        try:
            values.update(str(v) for v in mod.read_secrets(self.cfg).values() if v)
        except (mod.SecretsError, OSError, ValueError) as exc:
            log.warning("secrets file unreadable (%s); nothing from it can be leaked either", exc)
        return sorted((v for v in values if len(v) >= self.MIN_LEN), key=len, reverse=True)

    def values(self) -> list[str]:
        """Every form a secret can take in a response (encoded_forms), longest first."""
        with self._lock:
            if time.monotonic() - self._loaded_at > 5.0:
                forms = {form for value in self._collect() for form in encoded_forms(value)}
                self._values = sorted(forms, key=len, reverse=True)
                self._loaded_at = time.monotonic()
            return self._values

    def scrub(self, text: str) -> str:
        """`text` with every known secret value replaced by [redacted]."""
        for value in self.values():
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def scrub_all(self, text: str) -> str:
        """`scrub`, then secret-shaped text too: for logs and free text, which
        may hold a key no list knows."""
        return scrub_shapes(self.scrub(text))


def encoded_forms(value: str) -> set[str]:
    """`value` as it can appear in a response: raw, inside a JSON string (ASCII
    escapes or not, and as HTML-safe JSON writes it), URL-encoded, HTML-escaped."""
    forms = {value}
    for ensure_ascii in (True, False):
        forms.add(json.dumps(value, ensure_ascii=ensure_ascii)[1:-1])
    forms.add(json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
              .replace("'", "\\u0027")[1:-1])
    forms.add(urllib.parse.quote(value, safe=""))
    forms.add(urllib.parse.quote(value))
    forms.add(urllib.parse.quote_plus(value))
    forms.add(html.escape(value))
    forms.add(html.escape(value, quote=False))
    return {f for f in forms if len(f) >= Redactor.MIN_LEN}


def redact_config(value: Any, redactor: Redactor | None = None, *, _key: str = "") -> Any:
    """A copy of a config (or any JSON-like value) fit to show: values under
    secret-looking key names are [redacted] (names of environment variables
    and paths, `*_env`, `*_file`, [paths] secrets, are kept: they are not
    secrets), URL passwords are blanked (a DSN keeps its host), and
    with a `redactor` every known secret value is blanked wherever it is."""
    if isinstance(value, dict):
        return {k: redact_config(v, redactor, _key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_config(v, redactor, _key=_key) for v in value]
    if isinstance(value, str):
        if value and SECRET_NAME.search(_key) and not _key.lower().endswith(_NOT_SECRET_SUFFIXES) \
                and _key not in ("secrets", "dsn"):  # a path; a DSN keeps its host, its password is blanked below
            return REDACTED
        text = scrub_shapes(value)
        return redactor.scrub(text) if redactor is not None else text
    return value
