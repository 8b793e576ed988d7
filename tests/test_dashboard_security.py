"""Dashboard security against a real dashboard process on loopback HTTP: sign-in
never redirects off the site, signing out revokes the session on the server,
a secret is redacted in every encoded form (JSON responses and the live
stream), logs are served only from inside logs/, every response carries the
security headers, and the database, its WAL and the logs are private files
(and backups of the database) unless [paths] shared_read says otherwise."""

from __future__ import annotations

import html
import json
import os
import re
import stat
import urllib.parse
from pathlib import Path

import httpx
import pytest

from fleet.db import open_store
from tests.fakes.dashboard_env import DashboardProcess, SSEReader, write_config

SECRET = 'q"uo\\te-ünï-☃-𝄞-s3cr3t'  # a quote, a backslash, non-ASCII, and a character beyond the BMP


def _secret_forms(value: str) -> set[str]:
    """Every encoding of `value` a response could carry."""
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote(value), urllib.parse.quote_plus(value),
             html.escape(value)}
    for ensure_ascii in (True, False):
        forms.add(json.dumps(value, ensure_ascii=ensure_ascii)[1:-1])
    return forms


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _assert_no_secret(text: str, where: str) -> None:
    for form in _secret_forms(SECRET):
        assert form not in text, (where, form, text[:500])
    try:
        data = json.loads(text)
    except ValueError:
        return
    assert not any(SECRET in s for s in _strings(data)), (where, text[:500])


@pytest.fixture
def dash(isolated_home, monkeypatch):
    monkeypatch.setenv("FLEET_TEST_API_KEY", SECRET)  # a secret-looking variable of the dashboard process
    cfg = write_config(isolated_home, dashboard={"poll_s": 0.05, "keepalive_s": 1.0})
    store = open_store(cfg)
    with DashboardProcess(isolated_home) as d:
        yield d, store, cfg
    store.close()


# -- 1. sign-in redirects only to this site ------------------------------------
OFF_SITE = ["/\\evil.example/x", "/\t/evil.example/x", "/\n/evil.example", "/\r\n/evil.example", "//evil.example/x",
            "https://evil.example/", "javascript:alert(1)", "/\\/evil.example", "\\\\evil.example",
            "/\u3000/evil.example", "/\uff0f/evil.example", "/\x00/evil.example", "/\u200b/evil.example",
            " /evil", "evil.example/x", "/%09/evil.example/x"]


def _next_of(page: str) -> str:
    m = re.search(r'data-next="([^"]*)"', page)
    assert m, page[:500]
    return html.unescape(m.group(1))


def test_sign_in_only_ever_sends_the_browser_to_a_path_of_this_site(dash):
    d, *_ = dash
    for bad in OFF_SITE:
        resp = httpx.get(d.base + "/signin", params={"next": bad}, timeout=10)
        assert resp.status_code == 200
        target = _next_of(resp.text)
        # what a browser would make of it: never another host
        assert urllib.parse.urljoin(d.base + "/signin", target.replace("\\", "/")).startswith(d.base + "/"), bad
        if bad != "/%09/evil.example/x":  # the literal characters %09 are a harmless same-site path
            assert target == "/", (bad, target)
    for good in ("/tasks?status=PENDING", "/tasks/12", "/"):
        assert _next_of(httpx.get(d.base + "/signin", params={"next": good}, timeout=10).text) == good


# -- 2. signing out ends the session on the server ------------------------------
def _sign_in(d, client: httpx.Client) -> str:
    resp = client.post(d.base + "/api/session", json={"token": d.token})
    assert resp.status_code == 200 and resp.json()["authenticated"]
    return resp.json()["csrf_token"]


def test_signing_out_revokes_a_copied_cookie_and_sign_in_rotates_the_session(dash):
    d, store, _ = dash
    with httpx.Client(timeout=10) as browser, httpx.Client(timeout=10) as thief:
        csrf = _sign_in(d, browser)
        thief.cookies.update(browser.cookies)
        assert thief.get(d.base + "/api/session").json()["authenticated"]  # the copy works while signed in
        assert browser.request("DELETE", d.base + "/api/session", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert thief.get(d.base + "/api/session").json()["authenticated"] is False
        replay = thief.post(d.base + "/api/tasks", json={"skill": "noop"}, headers={"X-CSRF-Token": csrf})
        assert replay.status_code == 401, replay.text
        assert sum(store.counts().values()) == 0

        # a new sign-in gets a new session id, and the one it replaces stops working
        _sign_in(d, browser)
        first = dict(browser.cookies)
        _sign_in(d, browser)
        assert dict(browser.cookies) != first
        with httpx.Client(timeout=10, cookies=first) as old:
            assert old.get(d.base + "/api/session").json()["authenticated"] is False
        assert browser.get(d.base + "/api/session").json()["authenticated"] is True
    sessions = d.home / "dashboard_sessions.json"
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o600


# -- 3. a secret is redacted in every form it can take --------------------------
def test_a_secret_with_quotes_backslashes_and_non_ascii_never_leaves_in_any_encoding(dash):
    d, store, _ = dash
    store.post_note("ops", f"the key is {SECRET} (pasted by mistake)", author="me")
    task = store.enqueue("noop", {"key": SECRET, "url": "https://x.example/?k=" + urllib.parse.quote(SECRET, safe="")})
    with httpx.stream("GET", d.base + "/api/stream", timeout=httpx.Timeout(20, connect=5)) as resp:
        sse = SSEReader(resp)
        sse.until(lambda evs: any(e.get("event") == "hello" for e in evs))
        store.raise_alert("warning", "leak", f"a message with {SECRET} in it")
        events = sse.until(lambda evs: any(e.get("event") == "alert" for e in evs))
    for ev in events:
        if "data" in ev:
            _assert_no_secret(ev["data"], f"SSE {ev.get('event')}")
    assert any("[redacted]" in ev.get("data", "") for ev in events if ev.get("event") == "alert")
    for path in ("/api/notes?channel=ops", f"/api/tasks/{task.id}", "/api/tasks", "/api/activity", "/api/alerts"):
        resp = httpx.get(d.base + path, timeout=10)
        assert resp.status_code == 200, (path, resp.text)
        _assert_no_secret(resp.text, path)
    assert "[redacted]" in httpx.get(d.base + "/api/notes?channel=ops", timeout=10).text


# -- 4. logs are served only from inside logs/ ----------------------------------
def test_a_log_link_leading_out_of_the_logs_folder_is_refused(dash, tmp_path):
    d, _, cfg = dash
    outside = tmp_path / "private.txt"
    outside.write_text("OUTSIDE-THE-LOGS-FOLDER\n")
    logs = d.home / "logs"
    os.symlink(outside, logs / "escape.log")
    (logs / "real.log").write_text("a line\n")
    os.symlink(logs / "real.log", logs / "alias.log")  # a link that stays inside is a log
    resp = httpx.get(d.base + "/api/logs/escape", timeout=10)
    assert resp.status_code == 404 and "OUTSIDE" not in resp.text
    names = [entry["name"] for entry in httpx.get(d.base + "/api/logs", timeout=10).json()["logs"]]
    assert "escape" not in names and "real" in names
    assert httpx.get(d.base + "/api/logs/alias", timeout=10).json()["lines"] == ["a line"]


# -- 5. security headers on every response --------------------------------------
def _check_headers(resp: httpx.Response, what: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, (what, csp)
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, (what, csp)
    assert resp.headers.get("X-Frame-Options") == "DENY", what
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", what
    assert resp.headers.get("Referrer-Policy") == "same-origin", what


def test_every_kind_of_response_carries_the_security_headers(dash):
    d, *_ = dash
    pages = ["/", "/tasks", "/tasks/1", "/submit", "/approvals", "/knowledge", "/logs", "/messages", "/signin"]
    for path in pages:
        resp = httpx.get(d.base + path, timeout=10)
        assert resp.status_code == 200, path
        _check_headers(resp, path)
        # no inline script and no inline event handler for the policy to block
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", resp.text), path
        assert not re.search(r"\son[a-z]+\s*=", resp.text), path
    for path in ("/api/status", "/api/openapi.json", "/metrics", "/static/app.js", "/api/nosuch", "/nosuch"):
        _check_headers(httpx.get(d.base + path, timeout=10), path)
    _check_headers(httpx.post(d.base + "/api/tasks", json={"skill": "noop"}, timeout=10), "401")
    _check_headers(httpx.request("PUT", d.base + "/api/status", timeout=10), "405")
    with httpx.stream("GET", d.base + "/api/stream", timeout=10) as resp:
        _check_headers(resp, "SSE")


# -- 7. private files unless shared_read ----------------------------------------
def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("shared", [False, True], ids=["private", "shared_read"])
def test_database_wal_and_logs_are_private_unless_shared_read(isolated_home, shared):
    from fleet import procs

    old_umask = os.umask(0o022)  # the common default, which would make them 0644
    try:
        cfg = write_config(isolated_home, paths={"shared_read": shared})
        with DashboardProcess(isolated_home) as d:
            assert httpx.post(d.base + "/api/tasks", json={"skill": "noop"}, headers=d.headers(),
                              timeout=10).status_code == 201
            db = isolated_home / "fleet.db"
            files = [db, isolated_home / "fleet.db-wal", isolated_home / "fleet.db-shm",
                     isolated_home / "logs" / "dashboard.log"]
            for f in files:
                assert f.exists(), f
            out = isolated_home / "logs" / "child.out"
            procs.spawn(["true"], env=dict(os.environ), cwd=str(isolated_home), output_path=str(out),
                        shared_output=shared).wait(timeout=30)
            want_file, want_dir = (0o644, 0o755) if shared else (0o600, 0o700)
            from fleet.backup import create_backup

            backup = Path(create_backup(cfg)["path"])  # a copy of the database is as private as the database
            for f in [*files, out, backup / "fleet.db"]:
                assert _mode(f) == want_file, (f, oct(_mode(f)))
            for folder in (isolated_home / "logs", backup, backup.parent):
                assert _mode(folder) == want_dir, (folder, oct(_mode(folder)))
    finally:
        os.umask(old_umask)


def test_loose_files_from_an_older_fleet_are_tightened(isolated_home):
    cfg = write_config(isolated_home)
    old_umask = os.umask(0o022)
    try:
        (isolated_home / "logs").mkdir(mode=0o755)
        (isolated_home / "logs" / "dashboard.log").write_text("old line\n")
        os.chmod(isolated_home / "logs" / "dashboard.log", 0o644)
        open_store(cfg).close()
        os.chmod(isolated_home / "fleet.db", 0o644)
        with DashboardProcess(isolated_home):
            pass
        assert _mode(isolated_home / "fleet.db") == 0o600
        assert _mode(isolated_home / "logs" / "dashboard.log") == 0o600
        assert _mode(isolated_home / "logs") == 0o700
    finally:
        os.umask(old_umask)
