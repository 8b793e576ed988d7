"""/api/openapi.json: an OpenAPI 3.1 description generated from the app's own
URL map and each view's `doc` record, so it cannot drift from the routes
(tests check that every route is documented and every documented route exists).
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify

from .auth import OPEN_ENDPOINTS
from .common import body_schema, doc
from .params import INT64_MAX, param_schema

UNDOCUMENTED = "UNDOCUMENTED"
_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_ERROR = {"type": "object", "required": ["error", "status"],
          "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}


def openapi_path(rule: str, declared: dict | None = None) -> tuple[str, list[dict]]:
    """'/api/tasks/<int:task_id>' -> ('/api/tasks/{task_id}', [path parameter]);
    `declared` gives schemas for string parameters (a name's pattern)."""
    params = []

    def repl(m):
        conv, name = m.group(1) or "string", m.group(2)
        if conv == "int":  # werkzeug's int converter: digits only; the store holds int64
            schema = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
        elif conv == "float":
            schema = {"type": "number"}
        else:
            schema = param_schema((declared or {}).get(name, {"type": "string"}))
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(repl, rule), params


def build_spec(app) -> dict:
    c = app.extensions["fleet"]
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_openapi", None)
        path, path_params = openapi_path(rule.rule, (meta or {}).get("path"))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict = {"operationId": f"{rule.endpoint}.{method.lower()}",
                        "summary": meta["summary"] if meta else UNDOCUMENTED}
            if meta and meta["tag"]:
                op["tags"] = [meta["tag"]]
            params = list(path_params)
            for name, declared in (meta or {}).get("query", {}).items():
                p = {"name": name, "in": "query", "required": bool(declared.get("required")),
                     "schema": param_schema(declared)}
                if declared.get("description"):
                    p["description"] = declared["description"]
                params.append(p)
            if params:
                op["parameters"] = params
            if meta and meta["body"] is not None:
                op["requestBody"] = {"required": meta["body_required"],
                                     "content": {"application/json": {"schema": body_schema(meta)}}}
            if meta and meta["html"]:
                ok = {"description": "HTML page", "content": {"text/html": {}}}
            elif meta and meta["stream"]:
                ok = {"description": "event stream", "content": {"text/event-stream": {}}}
            elif meta and meta["text"]:
                ok = {"description": "text", "content": {"text/plain": {}}}
            else:
                ok = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
            responses = {str(meta["status"]) if meta else "200": ok}
            err = {"content": {"application/json": {"schema": _ERROR}}}
            for code, text in (meta or {}).get("responses", {}).items():
                if str(code).startswith("4"):
                    responses[str(code)] = {"description": text, **err}
                else:  # e.g. /api/health's 503 carries the health document itself
                    responses[str(code)] = {"description": text, "content": ok.get("content", {})}
            if rule.endpoint in OPEN_ENDPOINTS:
                pass  # the sign-in itself: open to all
            elif meta and meta["html"] and method == "GET" and not c.loopback:
                responses.setdefault("302", {"description": "not signed in: to the sign-in page"})
            elif method not in ("GET", "HEAD") or not c.loopback:
                responses.setdefault("401", {"description": "the dashboard token is needed", **err})
            if c.loopback:
                responses.setdefault("421", {"description": "a Host header that is not loopback (DNS rebinding)",
                                             **err})
            if method not in ("GET", "HEAD"):
                responses.setdefault("403", {"description": "read-only mode, or a browser session without "
                                                            "its CSRF token", **err})
            responses.setdefault("400", {"description": "bad input; the message says what to fix", **err})
            if path_params:
                missing = {"content": {"text/html": {}}} if meta and meta["html"] else err
                responses.setdefault("404", {"description": "no such resource, or the path does not name one",
                                             **missing})
            if method not in ("GET", "HEAD"):
                responses.setdefault("415", {"description": "a body that is not application/json", **err})
            responses.setdefault("503", {"description": "the fleet database could not answer; the message says "
                                                        "why", **err})
            op["responses"] = responses
            if method not in ("GET", "HEAD"):
                op["security"] = [{"bearer": []}, {"session": []}]
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fleet dashboard API", "version": "1",
                 "description": "Every action of the dashboard UI goes through this API. Mutations need "
                                "'Authorization: Bearer <token>' (or a browser session plus X-CSRF-Token)."},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "fleet_session"}}},
        "paths": paths,
    }


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
@doc("This OpenAPI 3 description of the dashboard's API", tag="meta")
def spec():
    return jsonify(build_spec(current_app))


def install(app, c) -> None:
    app.register_blueprint(bp)
