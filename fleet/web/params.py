"""Query parameters and JSON bodies as the OpenAPI description declares them,
checked before a view runs: each query value is read as its declared type
(integer, number, boolean, string; an RFC 3339 date or date-time for times)
and validated against its JSON schema, as is a body, so what the spec says
is exactly what the server accepts.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
from typing import Any

import jsonschema

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH_MAX = 1e11  # epoch seconds past year 5000: a typo, not a time

# A time: epoch seconds, an RFC 3339 date (2026-01-31) or date-time (2026-01-31T12:00:00Z).
TIME_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0, "maximum": EPOCH_MAX},
                         {"type": "string", "format": "date"},
                         {"type": "string", "format": "date-time"}]}
TIME_HINT = "epoch seconds, an RFC 3339 date like 2026-01-31 or date-time like 2026-01-31T12:00:00Z"

# Text with something in it, as the views decide it (Python's str.strip(), whose
# whitespace differs from JSON Schema's \s: it strips \x1c-\x1f and \x85, not \ufeff).
NON_BLANK = ("[^\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
             "\\u2028\\u2029\\u202f\\u205f\\u3000]")
# Text the store can hold in a filter: no NUL character.
NO_NUL = "^[^\\u0000]*$"

_INTEGER = re.compile(r"^[+-]?\d{1,30}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 date (UTC midnight) or date-time, or None
    when `text` is neither (a leap second reads as the second before it)."""
    if _DATE.match(text):
        try:
            return _dt.datetime.combine(_dt.date.fromisoformat(text), _dt.time(), _dt.UTC).timestamp()
        except ValueError:
            return None
    m = _DATE_TIME.match(text)
    if not m:
        return None
    day, hh, mm, ss, frac, zone = m.groups()
    try:
        when = _dt.datetime.fromisoformat(f"{day}T{hh}:{mm}:{min(int(ss), 59):02d}")
        if zone in ("Z", "z"):
            tz = _dt.UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            tz = _dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        when = when.replace(tzinfo=tz)
        return when.timestamp() + (float(frac) if frac else 0.0)
    except (ValueError, OverflowError):
        return None


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date")(lambda v: not isinstance(v, str) or (_DATE.match(v) is not None
                                                              and parse_rfc3339(v) is not None))
_FORMATS.checks("date-time")(lambda v: not isinstance(v, str) or (_DATE_TIME.match(v) is not None
                                                                   and parse_rfc3339(v) is not None))


@functools.lru_cache(maxsize=512)
def _validator_for(schema_json: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_json), format_checker=_FORMATS)


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A (cached) validator: building one checks the schema, which costs more
    than the validation itself."""
    return _validator_for(json.dumps(schema, sort_keys=True))


def param_schema(schema: dict) -> dict:
    """A declared query or path schema as published: integers get the int64
    bounds the store holds where none are given; documentation keys removed."""
    out = {k: v for k, v in schema.items() if k not in ("description", "required")}
    if out.get("type") == "integer":
        out.setdefault("minimum", INT64_MIN)
        out.setdefault("maximum", INT64_MAX)
        out["minimum"] = max(out["minimum"], INT64_MIN)
        out["maximum"] = min(out["maximum"], INT64_MAX)
    return out


def _coerce(raw: str, schema: dict) -> list[Any]:
    """The values `raw` can stand for under `schema` (several for anyOf)."""
    kind = schema.get("type")
    if "anyOf" in schema:
        return [v for branch in schema["anyOf"] for v in _coerce(raw, branch)]
    if kind == "integer":
        return [int(raw)] if _INTEGER.match(raw) else [raw]
    if kind == "number":
        if _NUMBER.match(raw):
            value = float(raw)
            if math.isfinite(value):
                return [int(value) if value.is_integer() and abs(value) < 2**53 else value]
        return [raw]
    if kind == "boolean":
        return [{"true": True, "false": False}.get(raw, raw)]
    return [raw]


def check_query(args, declared: dict[str, dict]) -> str | None:
    """Why the query string `args` (a MultiDict) breaks the declared parameters,
    or None when it keeps them. Undeclared parameters are not looked at."""
    for name, spec in declared.items():
        values = args.getlist(name)
        if not values:
            if spec.get("required"):
                return f"query parameter {name!r} is required"
            continue
        if len(values) > 1:
            return f"give query parameter {name!r} once, not {len(values)} times"
        schema = param_schema(spec)
        raw = values[0]
        check = validator(schema)
        if not any(check.is_valid(value) for value in _coerce(raw, schema)):
            return f"query parameter {name!r} must be {describe(schema, spec.get('description'))}, got {raw[:80]!r}"
    return None


def describe(schema: dict, description: str | None = None) -> str:
    """A schema in words, for error messages (a pattern of its own is said by
    the parameter's `description`)."""
    if schema == TIME_SCHEMA or schema.get("anyOf") == TIME_SCHEMA["anyOf"]:
        return TIME_HINT
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type", "a value")
    words = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "text"}
    out = words.get(kind, str(kind))
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None and hi is not None and (lo, hi) != (INT64_MIN, INT64_MAX):
        out += f" from {lo} to {hi}"
    elif lo is not None and lo != INT64_MIN:
        out += f" of at least {lo}"
    if "minLength" in schema or "maxLength" in schema:
        out += f" of {schema.get('minLength', 0)} to {schema.get('maxLength', 'any number of')} characters"
    pattern = schema.get("pattern")
    if pattern == NO_NUL:
        out += " without a NUL character"
    elif pattern == NON_BLANK:
        out += " that is not blank"
    elif pattern:
        out = description or f"{out} matching {pattern}"
    return out


def check_body(data: dict, schema: dict) -> str | None:
    """Why a JSON body breaks its declared schema (the deepest reason), or None."""
    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted((error.schema.get("properties") or {}))
        extra = sorted(str(k) for k in error.instance if k not in known)
        return (f"unknown field(s) {', '.join(extra)}{' in ' + where if where else ''}; "
                f"known fields are {', '.join(known)}")
    return f"the body's {where or 'top level'} is not valid: {error.message[:300]}"


def whole_numbers_as_int(data: dict, schema: dict) -> None:
    """JSON Schema counts 3.0 as an integer: where the body's schema says
    integer (a top-level field, or the items of a top-level array), turn such
    a float into the int the views and the store expect. In place."""
    for name, prop in (schema.get("properties") or {}).items():
        value = data.get(name)
        if prop.get("type") == "integer" and _whole(value):
            data[name] = int(value)
        elif prop.get("type") == "array" and (prop.get("items") or {}).get("type") == "integer" \
                and isinstance(value, list):
            data[name] = [int(v) if _whole(v) else v for v in value]


def _whole(value) -> bool:
    return isinstance(value, float) and value.is_integer()
