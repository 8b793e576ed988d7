"""/api/openapi.json is kept true: every route in the URL map is documented
and every documented operation resolves to a route; then hypothesis drives
requests generated from the description (query values, path values, JSON
bodies, with and without the token) and no response may be an undocumented
5xx (only /api/health documents one: 503 while not healthy)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.dashboard_env import bearer, make_app

SKIP_FUZZ = {("/api/stream", "get")}  # an endless stream; covered by the SSE tests


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("openapi_home")
    app, _cfg, store = make_app(home)
    store.register_agent("coder_1", "coder", status="idle")
    for i in range(3):
        store.enqueue("noop", {"n": i})
    t = store.enqueue("ask", {})
    c = store.claim("coder_1", ["ask"])
    store.ask_human(c.id, c.lease_token, "ok?", ["yes"])
    store.raise_alert("info", "test", "hello")
    yield app, store, t.id
    store.close()


def _spec(app):
    resp = app.test_client().get("/api/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def test_spec_is_openapi_3_with_every_route_documented(env):
    app, _, _ = env
    spec = _spec(app)
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    from fleet.web.openapi import openapi_path

    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path, _ = openapi_path(rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    assert routes == documented
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["summary"] != "UNDOCUMENTED", (path, method)
            assert {"200", "201", "202"} & set(op["responses"]), (path, method)
            names = re.findall(r"{(\w+)}", path)
            assert sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "path") == sorted(names)


def test_every_documented_operation_resolves_to_a_route(env):
    app, _, _ = env
    adapter = app.url_map.bind("localhost")
    for path, ops in _spec(app)["paths"].items():
        url = re.sub(r"{\w+}", "1", path)
        for method in ops:
            endpoint, _ = adapter.match(url, method=method.upper())
            assert endpoint in app.view_functions


def test_manual_endpoint_names_are_present(env):
    app, _, _ = env
    paths = set(_spec(app)["paths"])
    for name in ("/api/status", "/api/activity", "/api/skills", "/api/timeline", "/api/fleet/health",
                 "/api/fleet/uptime", "/api/fleet/idle", "/api/fleet/workers", "/api/knowledge", "/api/comms",
                 "/api/alerts", "/api/alerts/ack/{alert_id}", "/api/stream", "/api/health", "/metrics",
                 "/api/tasks", "/api/tasks/{task_id}"):
        assert name in paths, name


def test_declared_query_parameters_are_accepted(env):
    """A valid value for each documented query parameter is not refused as unknown."""
    app, _, _ = env
    client = app.test_client()
    samples = {"integer": "1", "boolean": "true", "string": "x"}
    for path, ops in _spec(app)["paths"].items():
        op = ops.get("get")
        if not op or (path, "get") in SKIP_FUZZ:
            continue
        for p in op.get("parameters", []):
            if p["in"] != "query":
                continue
            schema = p["schema"]
            value = str(schema["enum"][0]) if "enum" in schema else samples.get(schema.get("type"), "x")
            if "minimum" in schema and schema.get("type") == "integer":
                value = str(schema["minimum"])
            url = re.sub(r"{\w+}", "1", path)
            resp = client.get(url, query_string={p["name"]: value}, headers=bearer(app))
            assert resp.status_code < 500, (path, p["name"])
            if resp.status_code == 400:
                assert "unknown filter field" not in resp.get_json()["error"], (path, p["name"], resp.get_json())


def _operations(app):
    ops = []
    for path, methods in _spec(app)["paths"].items():
        for method, op in methods.items():
            if (path, method) not in SKIP_FUZZ:
                ops.append((path, method, op))
    return ops


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
query_values = st.one_of(st.integers(-5, 10**6).map(str), st.text(max_size=20), st.sampled_from(
    ["PENDING", "DONE,FAILED", "2026-01-01", "true", "day", "skill", "-1", "1e309", "nan", "../x"]))


@st.composite
def requests(draw, ops):
    path, method, op = draw(st.sampled_from(ops))
    url = path
    for p in op.get("parameters", []):
        if p["in"] == "path":
            value = str(draw(st.integers(-3, 5))) if p["schema"]["type"] == "integer" else draw(
                st.sampled_from(["coder_1", "supervisor", "x", "a.b", "%20"]))
            url = url.replace("{" + p["name"] + "}", value)
    query = {}
    for p in op.get("parameters", []):
        if p["in"] == "query" and draw(st.booleans()):
            query[p["name"]] = draw(query_values)
    body = None
    schema = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        props = schema.get("properties", {})
        keys = draw(st.lists(st.sampled_from(sorted(props) or ["x"]), unique=True, max_size=len(props) or 1))
        body = {k: draw(json_values) for k in keys}
        if draw(st.booleans()):
            body = draw(json_values)
    raw = draw(st.booleans())
    authed = draw(st.booleans())
    return method, url, query, body, raw, authed, op


def test_fuzz_from_the_description_never_gives_a_5xx(env):
    app, _, _ = env
    client = app.test_client()
    ops = _operations(app)
    auth = bearer(app)

    @settings(max_examples=250, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests(ops))
    def check(req):
        method, url, query, body, raw, authed, op = req
        headers = dict(auth) if authed else {}
        kwargs = {}
        if body is not None:
            if raw:
                kwargs["data"] = json.dumps(body)[:-1] or "{"
                headers["Content-Type"] = "application/json"
            else:
                kwargs["json"] = body
        resp = client.open(url, method=method.upper(), query_string=query, headers=headers, **kwargs)
        documented = str(resp.status_code) in op["responses"]  # e.g. /api/health's 503 when not healthy
        assert resp.status_code < 500 or documented, (method, url, query, body, resp.get_data(as_text=True)[:300])
        if 400 <= resp.status_code < 500 and resp.mimetype == "application/json":
            assert resp.get_json()["error"]

    check()


def test_what_each_view_reads_is_documented(env):
    """Query parameters a view reads by name, and a JSON body it parses, appear in
    its operation (read from the view's own source, so a new parameter cannot
    go undocumented)."""
    import inspect

    app, _, _ = env
    spec = _spec(app)
    from fleet.web.openapi import openapi_path

    reads = re.compile(r'(?:int_arg|str_arg|choice_arg|time_arg)\(\s*"(\w+)"|request\.args\.get\(\s*"(\w+)"')
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        source = inspect.getsource(view)
        path, _ = openapi_path(rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            op = spec["paths"][path][method.lower()]
            documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            for m in reads.finditer(source):
                name = m.group(1) or m.group(2)
                assert name in documented, f"{method} {path} reads ?{name} but does not document it"
                checked += 1
            if "json_body(" in source or "_role_from_body(" in source:
                assert "requestBody" in op, f"{method} {path} parses a JSON body but documents none"
    assert checked >= 20


def test_a_405_names_the_methods_that_are_allowed(env):
    app, _, _ = env
    client = app.test_client()
    resp = client.put("/api/tasks", headers=bearer(app))
    assert resp.status_code == 405
    assert {m.strip() for m in resp.headers["Allow"].split(",")} >= {"GET", "POST"}
    resp = client.delete("/metrics", headers=bearer(app))
    assert resp.status_code == 405 and "GET" in resp.headers["Allow"]


def test_typed_query_parameters_are_validated_not_ignored(env):
    """Values the description refuses are refused, also where a view would
    have skipped the parameter (no channel) or read an empty value as absent."""
    app, _, _ = env
    client = app.test_client()
    for url in ("/api/notes?limit=1001", "/api/usage?period=", "/api/alerts?all=maybe",
                "/api/alerts?limit=5&limit=x", "/api/tasks?since=yesterday", "/api/tasks?limit=",
                "/api/knowledge/file", "/api/fleet/idle?min_idle_s=1e3"):
        resp = client.get(url, headers=bearer(app))
        assert resp.status_code == 400, (url, resp.status_code)
        assert "query parameter" in resp.get_json()["error"], url
    for url in ("/api/tasks?since=2026-01-31", "/api/tasks?since=2026-01-31T12:00:00Z",
                "/api/tasks?until=1780000000.5", "/api/tasks?status=done,%20failed"):
        assert client.get(url, headers=bearer(app)).status_code == 200, url


def test_success_codes_other_than_200_are_documented(env):
    app, store, _ = env
    spec = _spec(app)
    assert "201" in spec["paths"]["/api/tasks"]["post"]["responses"]
    assert "201" in spec["paths"]["/api/tasks/{task_id}/requeue"]["post"]["responses"]
    assert "202" in spec["paths"]["/api/fleet/worker/{name}/pause"]["post"]["responses"]
    assert "404" in spec["paths"]["/api/tasks/{task_id}"]["get"]["responses"]
    resp = app.test_client().post("/api/tasks", json={"skill": "noop"}, headers=bearer(app))
    assert resp.status_code == 201


def test_host_checks_and_sign_in_redirects_are_documented(env, tmp_path):
    app, _, _ = env
    spec = _spec(app)
    resp = app.test_client().get("/api/status", headers={"Host": "evil.example"})
    assert resp.status_code == 421 and "421" in spec["paths"]["/api/status"]["get"]["responses"]
    open_app, _cfg, store = make_app(tmp_path, host="0.0.0.0")  # every endpoint needs the token
    try:
        client = open_app.test_client()
        open_spec = client.get("/api/openapi.json", headers=bearer(open_app)).get_json()
        assert client.get("/tasks").status_code == 302 and "302" in open_spec["paths"]["/tasks"]["get"]["responses"]
        assert client.get("/api/status").status_code == 401
        assert "401" in open_spec["paths"]["/api/status"]["get"]["responses"]
        assert not {"302", "401"} & set(open_spec["paths"]["/signin"]["get"]["responses"])
    finally:
        store.close()
