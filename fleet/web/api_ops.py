"""Operator-tool endpoints: the audit trail (GET /api/audit), debug reports
(POST /api/debug-report: the same fleet.debug_report function as the CLI's
report-issue and the launcher's button; GET /api/debug-report/<id>) and
their resolutions (GET /api/resolutions, POST /api/resolutions/<id>/resolve).
"""

from __future__ import annotations

import json
import os

from flask import Blueprint, jsonify

from fleet.store.operations import OPERATOR_ACTIONS, REPORT_STATES

from .common import ApiError, actor, choice_arg, ctx, doc, int_arg, json_body, str_arg, time_arg
from .params import NON_BLANK, TIME_SCHEMA

bp = Blueprint("ops", __name__)


def _text(data: dict, name: str, *, max_len: int, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{name} must be non-empty text")
    if len(value) > max_len:
        raise ApiError(400, f"{name} is longer than {max_len} characters")
    return value


@bp.get("/api/audit")
@doc("Operator actions (cancel, retry, approvals, pause/resume, control, alert acks, config edits, secret "
     "changes by name, erases, debug reports, resolutions): who, when, what; newest first, paged by id",
     tag="ops", query={
         "actor": {"type": "string", "description": "operator (CLI), dashboard (any sign-in), launcher, or exact"},
         "action": {"type": "string", "enum": list(OPERATOR_ACTIONS)},
         "since": {**TIME_SCHEMA, "description": "window start"},
         "until": {**TIME_SCHEMA, "description": "window end"},
         "before_id": {"type": "integer", "minimum": 1, "description": "the previous page's next_before_id"},
         "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
     })
def audit():
    page = ctx().store.audit_trail(actor=str_arg("actor"), action=choice_arg("action", OPERATOR_ACTIONS),
                                   since=time_arg("since"), until=time_arg("until"),
                                   before_id=int_arg("before_id", None, lo=1),
                                   limit=int_arg("limit", 50, lo=1, hi=1000))
    return jsonify(page)


@bp.post("/api/debug-report")
@doc("Write a debug report (secrets redacted) to reports/debug/ and open its resolution", tag="ops", body={
    "type": "object", "properties": {
        "description": {"type": ["string", "null"], "maxLength": 2000},
        "steps": {"type": ["string", "null"], "maxLength": 4000},
        "include_logs": {"type": "boolean", "description": "default true"}}},
    responses={"201": "the report: {id, json_path, md_path, status}"})
def debug_report_create():
    from fleet.debug_report import generate_debug_report

    c = ctx()
    data = json_body(required=False)
    include_logs = data.get("include_logs", True)
    if not isinstance(include_logs, bool):
        raise ApiError(400, "include_logs must be true or false")
    out = generate_debug_report(c.cfg, c.store, description=_text(data, "description", max_len=2000),
                                steps=_text(data, "steps", max_len=4000), include_logs=include_logs, by=actor())
    return jsonify({k: out[k] for k in ("id", "json_path", "md_path", "status")}), 201


@bp.get("/api/debug-report/<int:report_id>")
@doc("One debug report: its record (status, resolution) and the report itself", tag="ops",
     responses={"404": "no such report, or its file is gone"})
def debug_report_get(report_id: int):
    c = ctx()
    record = c.store.debug_report(report_id)
    folder = os.path.realpath(os.path.join(c.cfg["home"], "reports", "debug"))
    path = os.path.realpath(os.path.join(c.cfg["home"], record["path"]))
    if os.path.dirname(path) != folder:
        raise ApiError(404, f"debug report {report_id} names a file outside reports/debug/")
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except (OSError, ValueError):
        raise ApiError(404, f"the file of debug report {report_id} ({record['path']}) is missing or unreadable",
                       record=record) from None
    return jsonify({"record": record, "report": report})


@bp.get("/api/resolutions")
@doc("Debug reports and their resolution state (open -> resolved, with the note), newest first", tag="ops",
     query={"status": {"type": "string", "enum": list(REPORT_STATES)},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000}})
def resolutions():
    return jsonify({"reports": ctx().store.debug_reports(status=choice_arg("status", REPORT_STATES),
                                                         limit=int_arg("limit", 100, lo=1, hi=1000))})


@bp.post("/api/resolutions/<int:report_id>/resolve")
@doc("Resolve a debug report with a note (and optionally the fixing commit and the regression test)", tag="ops",
     body={"type": "object", "required": ["note"], "properties": {
         "note": {"type": "string", "minLength": 1, "maxLength": 4000, "pattern": NON_BLANK},
         "fix_commit": {"type": "string", "maxLength": 200}, "regression_test": {"type": "string", "maxLength": 500}}},
     responses={"404": "no such report", "409": "already resolved"})
def resolve(report_id: int):
    data = json_body()
    report = ctx().store.resolve_debug_report(
        report_id, _text(data, "note", max_len=4000, required=True), by=actor(),
        fix_commit=_text(data, "fix_commit", max_len=200), regression_test=_text(data, "regression_test", max_len=500))
    return jsonify({"report": report})


def install(app, c) -> None:
    app.register_blueprint(bp)
