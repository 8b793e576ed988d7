"""Shared pieces of the dashboard's blueprints: the per-app context, JSON
errors, request parsing (query arguments, JSON bodies, times) and the `doc`
decorator that feeds the OpenAPI description.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from flask import current_app, jsonify, request


class ApiError(Exception):
    """An error meant for the caller: HTTP status plus a message saying what to do."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def ctx():
    """The FleetContext of the running app (config, store, auth, streams)."""
    return current_app.extensions["fleet"]


def error_response(status: int, message: str, **extra: Any):
    resp = jsonify({"error": message, "status": status, **extra})
    resp.status_code = status
    return resp


# -- OpenAPI documentation attached to view functions ---------------------
def doc(summary: str, *, query: dict | None = None, body: dict | None = None,
        responses: dict | None = None, tag: str | None = None, html: bool = False,
        stream: bool = False, text: bool = False, path: dict | None = None, status: int = 200,
        body_required: bool = True):
    """Describe a route for /api/openapi.json.

    `query` maps a parameter name to a JSON schema (add "description", and
    "required": True for a parameter that must be given); every declared query
    parameter is checked against its schema before the view runs
    (fleet/web/params.py). `path` gives schemas for string path parameters,
    `body` is the JSON schema of the request body, or a function of the
    context returning it (`body_required` False when it may be left out),
    `responses` maps extra status codes to descriptions, `status` is the
    success code (201 for a creation).
    """

    def deco(fn):
        fn._openapi = {
            "summary": summary, "query": query or {}, "body": body, "body_required": body_required,
            "responses": responses or {}, "tag": tag, "html": html, "stream": stream, "text": text,
            "path": path or {}, "status": status,
        }
        return fn

    return deco


# -- request parsing -------------------------------------------------------
def body_schema(meta: dict) -> dict | None:
    """The declared body schema of a view (`body` may be a function of the
    context, for schemas that follow the fleet: its skills, its roles)."""
    body = meta["body"]
    return body(ctx()) if callable(body) else body


def _view_meta() -> dict | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "_openapi", None)


def check_declared_input():
    """before_request: a documented query parameter that breaks its schema is a
    400 saying what, before the view runs (so the OpenAPI description is
    exactly what the server accepts). A body's whole numbers (3.0) are made
    ints where its schema says integer; the view checks the body itself with
    `declared_body()`, after its own checks, whose messages say more."""
    meta = _view_meta()
    if not meta:
        return None
    from .params import check_query, whole_numbers_as_int

    problem = check_query(request.args, meta["query"]) if meta["query"] else None
    if problem:
        return error_response(400, problem)
    if meta["body"] is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
        data = json_body(required=meta["body_required"])
        whole_numbers_as_int(data, body_schema(meta))  # (the parsed body is cached: the view reads these)
    return None


def declared_body() -> dict:
    """The request's JSON body, checked against the view's declared schema: a
    400 naming what breaks it. Views call it after their own checks and before
    they change anything, so nothing the description refuses gets through."""
    from .params import check_body

    meta = _view_meta()
    data = json_body(required=meta["body_required"])
    problem = check_body(data, body_schema(meta))
    if problem:
        raise ApiError(400, problem)
    return data


def json_body(required: bool = True) -> dict:
    """The request's JSON object, or a 400/415 naming the problem."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise ApiError(400, "this endpoint needs a JSON object body (Content-Type: application/json)")
        return {}
    if request.mimetype != "application/json":
        raise ApiError(415, f"send the body as application/json, not {request.mimetype or 'no content type'}")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply to be a request of this API") from None
    if data is None:
        raise ApiError(400, "the body is not valid JSON; check quotes and commas")
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def int_arg(name: str, default: int | None = None, *, lo: int | None = None, hi: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ApiError(400, f"query parameter {name!r} must be from {lo} to {hi}, got {value}")
    return value


def choice_arg(name: str, choices, default: str | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def str_arg(name: str, *, max_len: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len:
        raise ApiError(400, f"query parameter {name!r} is longer than {max_len} characters")
    return raw


def parse_time(value: Any, name: str) -> float | None:
    """Epoch seconds or an ISO 8601 date/time (UTC when no zone) -> epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ApiError(400, f"{name} must be epoch seconds or an ISO date like 2026-01-31, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise ApiError(400, f"{name} must be a finite number of epoch seconds")
        return float(value)
    text = str(value).strip()
    try:
        number = float(text)
        if math.isfinite(number):
            return number
    except ValueError:
        pass
    from .params import parse_rfc3339

    stamp = parse_rfc3339(text)  # what the OpenAPI description promises (also 't'/'z', leap seconds)
    if stamp is not None:
        return stamp
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400, f"{name} must be epoch seconds or an ISO date like 2026-01-31 or 2026-01-31T12:00, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


def time_arg(name: str) -> float | None:
    return parse_time(request.args.get(name), f"query parameter {name!r}")


def actor() -> str:
    """Who an action is recorded as: the dashboard plus how the caller signed in."""
    how = getattr(request, "fleet_auth", None) or "anonymous"
    return f"dashboard:{how}"
