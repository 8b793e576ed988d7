"""report skill: the operator's phase report (uptime, capacity utilisation,
tasks per day, restarts; fleet.report) written as markdown to
knowledge/reports/<YYYYMMDD>.md, for a nightly schedule. No model needed.
"""

from __future__ import annotations

DESCRIPTION = ("Write the phase report (uptime over 1 and N days, capacity utilisation, tasks and restarts per "
               "day) to knowledge/reports/<date>.md; the same report as `lead_client report`.")
REQUIRES_NETWORK = False
REQUIRES_MODEL = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 300
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "days": {"type": "integer", "minimum": 1, "maximum": 3650, "description": "window in days (default 30)"},
    },
    "additionalProperties": False,
}


def run(payload: dict, config: dict, log) -> dict:
    from fleet import report
    from fleet.atomic import atomic_write_text
    from fleet.db import shared_store

    from ._common import display_path, knowledge_path, today

    rep = report.build_report(config, shared_store(config), days=int(payload.get("days", 30)))
    path = knowledge_path(config, "reports", f"{today()}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, report.render_markdown(rep))
    log.info("report written to %s", path)
    return {"path": display_path(config, path), "uptime_pct": rep["uptime_pct"],
            "capacity_utilisation_pct": rep["capacity_utilisation_pct"], "tasks": rep["tasks"]}
