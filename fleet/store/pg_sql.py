"""The store's SQL as PostgreSQL runs it: the mixins write one dialect (SQLite's,
with `?` placeholders) and `translate` rewrites each statement once (cached)
for psycopg. Only spelling differences live here; where the SQL differs in
shape (the claim's row lock, the task counters) the backend supplies its own.
"""

from __future__ import annotations

import functools
import re

_INDEX_HINT = re.compile(r"\s+(?:INDEXED\s+BY\s+\w+|NOT\s+INDEXED)\b", re.IGNORECASE)
_IFNULL = re.compile(r"\bIFNULL\s*\(", re.IGNORECASE)
_JSON_FIELD = re.compile(r"\bjson_extract\(\s*(\w+(?:\.\w+)?)\s*,\s*'\$\.(\w+)'\s*\)", re.IGNORECASE)
_LIKE = re.compile(r"(?<!I)\bLIKE\b", re.IGNORECASE)
_CAST_OPEN = re.compile(r"\bCAST\s*\(", re.IGNORECASE)
_AS_INTEGER = re.compile(r"\s+AS\s+INTEGER\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """One statement of the store's SQL as psycopg takes it.

    * `?` placeholders become `%s`, and a literal `%` becomes `%%` (psycopg
      reads `%` as the start of a placeholder); text inside quotes is kept.
    * SQLite's index hints (`INDEXED BY ix`, `NOT INDEXED`) are dropped:
      PostgreSQL's planner picks the partial indexes by itself.
    * IFNULL is COALESCE; `json_extract(col, '$.key')` is `col::jsonb ->> 'key'`
      (`col` may be qualified: `r.detail`).
    * LIKE is ILIKE: SQLite's LIKE ignores ASCII case, PostgreSQL's does not
      (the columns use the "C" collation, so ILIKE folds ASCII only as well).
    * `CAST(x AS INTEGER)` truncates toward zero as SQLite's does (PostgreSQL
      would round): `CAST(TRUNC(x) AS BIGINT)`.
    """
    out = _INDEX_HINT.sub("", sql)
    out = _IFNULL.sub("COALESCE(", out)
    out = _JSON_FIELD.sub(r"(\1::jsonb ->> '\2')", out)
    out = _LIKE.sub("ILIKE", out)
    out = _truncating_casts(out)
    return _placeholders(out)


def _placeholders(sql: str) -> str:
    """`?` -> `%s` and `%` -> `%%` outside quoted text and identifiers; `%`
    inside quotes is doubled too (psycopg parses the whole string)."""
    parts: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            parts.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            parts.append(ch)
        elif ch == "?":
            parts.append("%s")
        elif ch == "%":
            parts.append("%%")
        else:
            parts.append(ch)
    return "".join(parts)


def _truncating_casts(sql: str) -> str:
    """Each `CAST(expr AS INTEGER)` (parentheses balanced) as
    `CAST(TRUNC(expr) AS BIGINT)`."""
    pos = 0
    out: list[str] = []
    while True:
        m = _CAST_OPEN.search(sql, pos)
        if m is None:
            out.append(sql[pos:])
            return "".join(out)
        depth, i = 1, m.end()
        while i < len(sql) and depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        inner = sql[m.end():i - 1]
        tail = _AS_INTEGER.search(inner)
        out.append(sql[pos:m.start()])
        if depth == 0 and tail is not None:
            out.append(f"CAST(TRUNC({_truncating_casts(inner[:tail.start()])}) AS BIGINT)")
        else:
            out.append(sql[m.start():i])
        pos = i
