"""Schedule endpoint: `GET /api/schedules`, every [schedule.NAME] with its
next run and its last run's outcome (read-only; pause and resume go through
`lead_client schedule`)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from fleet.schedule import host_zone_name, parse_schedules, schedule_rows

from .common import ctx, doc

bp = Blueprint("schedule", __name__)


@bp.get("/api/schedules")
@doc("Schedules: skill, cron or interval (with its zone), paused, next run and the last run with its outcome",
     tag="fleet")
def schedules():
    c = ctx()
    return jsonify({"schedules": schedule_rows(c.store, parse_schedules(c.cfg)), "host_zone": host_zone_name()})


def install(app, c) -> None:
    app.register_blueprint(bp)
