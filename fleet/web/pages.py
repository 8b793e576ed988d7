"""HTML pages of the dashboard: server-rendered shells (templates/) that the
page scripts (static/) fill from the JSON API. Pages for parts the fleet
lacks (hardware, usage) are not offered.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from .auth import safe_next
from .common import ctx, doc
from .params import INT64_MAX


def features(app) -> dict:
    rules = {r.rule for r in app.url_map.iter_rules()}
    return {
        "control": "/api/fleet/start" in rules,
        "hardware": "/api/thermal" in rules,
        "hw_history": "/api/hw/history" in rules,
        "usage": "/api/usage" in rules,
        "intent": "/api/intent" in rules,
        "reviews": "/api/reviews" in rules,
        "discussions": "/api/discussions" in rules,
        "code_stats": "/api/code_stats" in rules,
        "rag": "/api/rag" in rules,
    }


def _nav(feat: dict) -> list[tuple[str, str]]:
    items = [("/", "Overview"), ("/tasks", "Tasks"), ("/submit", "Submit"), ("/approvals", "Approvals"),
             ("/workflows", "Workflows")]
    if feat["hardware"]:
        items.append(("/hardware", "Hardware"))
    if feat["usage"]:
        items.append(("/usage", "Usage"))
    items += [("/knowledge", "Knowledge"), ("/logs", "Logs"), ("/messages", "Messages"), ("/reports", "Reports"),
              ("/audit", "Audit")]
    return items


def _render(template: str, page: str, title: str, **extra):
    from flask import current_app

    feat = current_app.extensions["fleet_features"]
    c = ctx()
    return render_template(template, page=page, title=title, features=feat, nav=_nav(feat),
                           fleet_name=c.cfg["fleet"]["name"], read_only=c.read_only, **extra)


def install(app, c) -> None:
    bp = Blueprint("pages", __name__)

    @bp.get("/")
    @doc("Overview page: agents, queue, sparklines, alerts, fleet controls", tag="pages", html=True)
    def overview():
        return _render("overview.html", "overview", "Overview")

    @bp.get("/tasks")
    @doc("Tasks page: filters, pagination, bulk actions", tag="pages", html=True)
    def tasks():
        return _render("tasks.html", "tasks", "Tasks")

    @bp.get("/tasks/<int:task_id>")
    @doc("One task's page: payload, attempts, result, error, actions", tag="pages", html=True)
    def task(task_id: int):
        if task_id > INT64_MAX:  # no task can have that id
            abort(404)
        return _render("task.html", "task", f"Task {task_id}", task_id=task_id)

    @bp.get("/submit")
    @doc("Submit page: a skill's payload form, or an instruction for the intent parser", tag="pages", html=True)
    def submit():
        return _render("submit.html", "submit", "Submit")

    @bp.get("/approvals")
    @doc("Approvals page: tasks waiting for a person", tag="pages", html=True)
    def approvals():
        return _render("approvals.html", "approvals", "Approvals")

    @bp.get("/workflows")
    @doc("Workflows page: each code-factory workflow's phase, history and cost", tag="pages", html=True)
    def workflows():
        return _render("workflows.html", "workflows", "Workflows")

    @bp.get("/knowledge")
    @doc("Knowledge page: what skills wrote", tag="pages", html=True)
    def knowledge():
        return _render("knowledge.html", "knowledge", "Knowledge")

    @bp.get("/logs")
    @doc("Logs page: the tail of each process's log", tag="pages", html=True)
    def logs():
        return _render("logs.html", "logs", "Logs")

    @bp.get("/messages")
    @doc("Messages and notes page", tag="pages", html=True)
    def messages():
        return _render("messages.html", "messages", "Messages")

    @bp.get("/reports")
    @doc("Reports page: the Report issue form and the debug reports with their resolution", tag="pages", html=True)
    def reports():
        return _render("reports.html", "reports", "Reports")

    @bp.get("/audit")
    @doc("Audit page: every operator action, filtered and paged", tag="pages", html=True)
    def audit():
        from fleet.store.operations import OPERATOR_ACTIONS

        return _render("audit.html", "audit", "Audit", actions=OPERATOR_ACTIONS)

    @bp.get("/signin")
    @doc("Sign-in page: paste the dashboard token once", tag="pages", html=True,
         query={"next": {"type": "string", "description": "page to open after signing in (a local path)"}})
    def signin():
        return _render("signin.html", "signin", "Sign in", next_url=safe_next(request.args.get("next")))

    if "/api/thermal" in {r.rule for r in app.url_map.iter_rules()}:
        @bp.get("/hardware")
        @doc("Hardware page: VRAM, temperature against thresholds, power, throttling, tier", tag="pages",
             html=True)
        def hardware():
            return _render("hardware.html", "hardware", "Hardware")

    if "/api/usage" in {r.rule for r in app.url_map.iter_rules()}:
        @bp.get("/usage")
        @doc("Usage page: cost and tokens by skill, provider and model; budgets", tag="pages", html=True)
        def usage():
            return _render("usage.html", "usage", "Usage")

    app.register_blueprint(bp)
    app.extensions["fleet_features"] = features(app)
