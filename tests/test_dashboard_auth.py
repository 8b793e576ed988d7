"""Dashboard security: every mutating route (taken from the app's URL map, so
a new route cannot skip the check) refuses without the token and accepts
with it; browser sessions need the CSRF token; read-only mode refuses every
mutation; non-loopback binds need the token for reads; the token file is
0600; and no GET response ever carries a secret."""

from __future__ import annotations

import os
import re
import stat

import pytest

from tests.fakes.dashboard_env import bearer, make_app

SAFE = {"GET", "HEAD", "OPTIONS"}
SESSION_ROUTES = {("/api/session", "POST"), ("/api/session", "DELETE")}
FAKE_API_KEY = "sk-ant-FAKEKEY-0123456789abcdefghij"
FAKE_SECRET = "super-secret-value-xyz-987654"
FAKE_ODD_NAME = "odd-name-provider-key-55555"
FAKE_URL_PASSWORD = "pw-in-the-url-0987654321"


def concrete(rule: str) -> str:
    """A URL for a rule: integers for <int:...>, a worker name for the rest."""
    return re.sub(r"<int:\w+>", "1", re.sub(r"<(?:string:)?(\w+)>", "coder_1", rule))


def mutating_routes(app) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - SAFE):
            out.append((rule.rule, method))
    return sorted(out)


def get_routes(app) -> list[str]:
    return sorted({concrete(r.rule) for r in app.url_map.iter_rules()
                   if "GET" in (r.methods or ()) and r.endpoint != "static" and r.rule != "/api/stream"})


@pytest.fixture
def env(isolated_home):
    app, cfg, store = make_app(isolated_home)
    yield app, app.test_client(), store, cfg
    store.close()


def test_the_url_map_has_the_expected_mutations(env):
    app, *_ = env
    routes = mutating_routes(app)
    assert ("/api/tasks", "POST") in routes and ("/api/alerts/ack/<int:alert_id>", "POST") in routes
    assert len(routes) >= 12


def test_every_mutating_route_refuses_without_a_token_and_changes_nothing(env):
    app, client, store, _ = env
    store.enqueue("noop", {})
    before = (store.counts(), store.last_event_id())
    for rule, method in mutating_routes(app):
        resp = client.open(concrete(rule), method=method, json={"skill": "noop"})
        assert resp.status_code == 401, (rule, method, resp.status_code)
        assert "token" in resp.get_json()["error"]
    assert (store.counts(), store.last_event_id()) == before


def test_every_mutating_route_refuses_a_wrong_token(env):
    app, client, *_ = env
    for rule, method in mutating_routes(app):
        resp = client.open(concrete(rule), method=method, json={}, headers={"Authorization": "Bearer nope-nope-nope"})
        assert resp.status_code == 401, (rule, method)


def test_every_mutating_route_accepts_the_token(env):
    app, client, store, _ = env
    store.register_agent("coder_1", "coder", status="idle")
    store.enqueue("noop", {})
    bodies = {"/api/tasks": {"skill": "noop"}, "/api/tasks/bulk": {"action": "cancel", "filter": {"skill": "noop"}, "dry_run": True},
              "/api/comms": {"recipient": "coder_1", "body": "hi"}, "/api/notes": {"channel": "c", "body": "b"},
              "/api/tasks/<int:task_id>/respond": {"answer": "yes"}, "/api/intent": {"instruction": '{"skill": "noop"}'}}
    for rule, method in mutating_routes(app):
        resp = client.open(concrete(rule), method=method, json=bodies.get(rule, {}), headers=bearer(app))
        assert resp.status_code not in (401, 403) and resp.status_code < 500, (rule, method, resp.get_data(as_text=True))


def test_token_in_the_query_string_is_refused(env):
    app, client, *_ = env
    token = app.extensions["fleet"].token
    resp = client.post(f"/api/fleet/pause?token={token}")
    assert resp.status_code == 400 and "never accepted in the URL" in resp.get_json()["error"]
    assert client.get(f"/api/status?access_token={token}").status_code == 400


def test_cookie_session_needs_csrf_for_mutations(env):
    app, client, store, _ = env
    token = app.extensions["fleet"].token
    assert client.post("/api/session", json={"token": "wrong"}).status_code == 401
    resp = client.post("/api/session", json={"token": token})
    assert resp.status_code == 200
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token not in cookie
    info = client.get("/api/session").get_json()
    assert info["authenticated"] is True and info["method"] == "cookie" and info["csrf_token"]
    no_csrf = client.post("/api/alerts/ack/1")
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.get_json()["error"]
    wrong = client.post("/api/tasks", json={"skill": "noop"}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403 and sum(store.counts().values()) == 0
    ok = client.post("/api/tasks", json={"skill": "noop"}, headers={"X-CSRF-Token": info["csrf_token"]})
    assert ok.status_code == 201 and ok.get_json()["task"]["created_by"] == "dashboard:cookie"
    assert client.delete("/api/session", headers={"X-CSRF-Token": info["csrf_token"]}).status_code == 200
    assert client.get("/api/session").get_json()["authenticated"] is False
    assert client.post("/api/tasks", json={"skill": "noop"}, headers={"X-CSRF-Token": info["csrf_token"]}).status_code == 401


def test_read_only_mode_refuses_every_mutation_and_hides_controls(isolated_home):
    app, _cfg, store = make_app(isolated_home, read_only=True)
    client = app.test_client()
    for rule, method in mutating_routes(app):
        if (rule, method) in SESSION_ROUTES:
            continue
        resp = client.open(concrete(rule), method=method, json={"skill": "noop"}, headers=bearer(app))
        assert resp.status_code == 403 and "read-only" in resp.get_json()["error"], (rule, method)
    assert sum(store.counts().values()) == 0
    assert client.get("/api/session").get_json()["read_only"] is True
    assert b'class="ro"' in client.get("/").data
    store.close()


def test_non_loopback_bind_needs_the_token_for_every_read(isolated_home):
    app, _cfg, store = make_app(isolated_home, host="0.0.0.0")
    client = app.test_client()
    for path in get_routes(app):
        resp = client.get(path)
        if path in ("/signin", "/api/session"):
            assert resp.status_code == 200, path
        elif path.startswith("/api/") or path == "/metrics":
            assert resp.status_code == 401, path
        else:
            assert resp.status_code == 302 and "/signin" in resp.headers["Location"], path
    assert client.get("/api/status", headers=bearer(app)).status_code == 200
    store.close()


def test_loopback_bind_refuses_foreign_host_headers(env):
    _app, client, *_ = env
    assert client.get("/api/status", headers={"Host": "attacker.example:5555"}).status_code == 421
    assert client.get("/api/status", headers={"Host": "127.0.0.1:5555"}).status_code == 200
    assert client.get("/api/status", headers={"Host": "[::1]:5555"}).status_code == 200


def test_token_file_is_created_0600_and_reused(isolated_home, monkeypatch):
    from fleet.web.auth import load_or_create_token

    app, cfg, store = make_app(isolated_home)
    path = isolated_home / "dashboard.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().strip() == app.extensions["fleet"].token
    assert load_or_create_token(cfg) == (app.extensions["fleet"].token, str(path))
    os.chmod(path, 0o644)
    load_or_create_token(cfg)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    monkeypatch.setenv("FLEET_DASHBOARD_TOKEN", "configured-token-0123456789")
    assert load_or_create_token(cfg)[0] == "configured-token-0123456789"
    store.close()


def test_no_get_response_contains_a_secret(isolated_home, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("MYLLM_ACCESS", FAKE_ODD_NAME)  # a provider key under a name that looks harmless
    app, cfg, store = make_app(isolated_home, providers={"mine": {
        "type": "openai_compatible", "api_key_env": "MYLLM_ACCESS",
        "base_url": f"http://user:{FAKE_URL_PASSWORD}@127.0.0.1:9/v1"}})
    from fleet.secret_file import set_secret

    set_secret(cfg, "OPENAI_API_KEY", FAKE_SECRET)
    token = app.extensions["fleet"].token
    # Put the secrets where careless code would echo them: payloads, errors, logs, notes, knowledge.
    t = store.enqueue("noop", {"key": FAKE_API_KEY, "other": FAKE_SECRET, "tok": token,
                               "odd": FAKE_ODD_NAME, "url": FAKE_URL_PASSWORD})
    c = store.claim("coder_1", ["noop"])
    store.fail(c.id, c.lease_token, f"auth failed with {FAKE_API_KEY}", retryable=False)
    store.post_note("ops", f"the token is {token}")
    store.send_message("x", "coder_1", {"key": FAKE_SECRET})
    store.raise_alert("warning", "models", f"key {FAKE_API_KEY} rejected")
    os.makedirs(cfg["paths"]["logs"], exist_ok=True)
    with open(os.path.join(cfg["paths"]["logs"], "coder_1.log"), "w") as fh:
        fh.write(f"using {FAKE_API_KEY}\n")
    os.makedirs(cfg["paths"]["knowledge"], exist_ok=True)
    with open(os.path.join(cfg["paths"]["knowledge"], "leak.md"), "w") as fh:
        fh.write(f"{FAKE_SECRET}\n")
    client = app.test_client()
    client.post("/api/session", json={"token": token})
    paths = get_routes(app) + [f"/api/tasks/{t.id}", "/api/logs/coder_1", "/api/knowledge/file?path=leak.md",
                               "/api/notes?channel=ops", "/api/comms", "/api/tasks?text=auth", f"/tasks/{t.id}"]
    secrets = [FAKE_API_KEY, token, FAKE_ODD_NAME, FAKE_URL_PASSWORD] + ([FAKE_SECRET] if set_secret else [])
    scanned = 0
    for path in paths:
        for headers in ({}, bearer(app)):
            resp = client.get(path, headers=headers)
            body = resp.get_data(as_text=True) + str(resp.headers)
            for secret in secrets:
                assert secret not in body, f"{path} leaked a secret"
            scanned += 1
    assert scanned >= 2 * len(paths)
    detail = client.get(f"/api/tasks/{t.id}").get_json()
    assert detail["task"]["payload"]["key"] == "[redacted]" and "[redacted]" in detail["task"]["error"]
    store.close()
