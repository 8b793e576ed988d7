"""The dashboard's web layer: one blueprint per area of the JSON API, the
live-event stream, /metrics, the OpenAPI description and the HTML pages
(templates/ and static/ beside this file; no build step, no CDN).
"""

from __future__ import annotations


def register_blueprints(app, c) -> None:
    """Register every blueprint whose feature exists in this fleet."""
    from . import (
        api_comms,
        api_files,
        api_fleet,
        api_hw,
        api_knowledge,
        api_ops,
        api_schedule,
        api_status,
        api_tasks,
        api_usage,
        api_workflows,
        metrics,
        openapi,
        pages,
        sse,
    )

    for module in (api_status, api_tasks, api_fleet, api_comms, api_files, api_knowledge, api_hw, api_usage,
                   api_schedule, api_workflows, api_ops, sse, metrics, openapi, pages):
        module.install(app, c)
