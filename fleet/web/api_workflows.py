"""Workflow endpoints: `GET /api/workflows` (newest first, each with its phase
history and cost) and `GET /api/workflows/<id>`. Read-only: starting,
approving and cancelling go through `lead_client workflow` (approvals also
through the Approvals page, where the plan's question waits)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request

from fleet.store import NotFound
from fleet.workflow.view import workflow_view

from .common import ctx, doc
from .params import INT64_MAX

bp = Blueprint("workflows", __name__)
STATUSES = ("RUNNING", "DONE", "FAILED", "CANCELLED", "REJECTED")


@bp.get("/api/workflows")
@doc("Workflows, newest first: status, phase, cost so far and the history of finished phases", tag="tasks",
     query={"status": {"type": "string", "enum": list(STATUSES), "description": "only workflows in this status"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "description": "most rows (default 50)"}})
def workflows():
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        return jsonify({"error": f"status must be one of {', '.join(STATUSES)}"}), 400
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        return jsonify({"error": "limit must be an integer"}), 400
    if not 1 <= limit <= 500:
        return jsonify({"error": "limit must be between 1 and 500"}), 400
    store = ctx().store
    return jsonify({"workflows": [workflow_view(store, w) for w in store.list_workflows(status=status, limit=limit)]})


@bp.get("/api/workflows/<int:workflow_id>")
@doc("One workflow: its plan, phase, history, cost, branch and report", tag="tasks",
     responses={404: "no such workflow"})
def workflow(workflow_id: int):
    if workflow_id > INT64_MAX:
        abort(404)
    store = ctx().store
    try:
        return jsonify({"workflow": workflow_view(store, store.get_workflow(workflow_id))})
    except NotFound as exc:
        return jsonify({"error": str(exc)}), 404


def install(app, c) -> None:
    app.register_blueprint(bp)
