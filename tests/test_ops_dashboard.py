"""The operator-tool endpoints of a real dashboard process over real HTTP:
POST /api/debug-report (authenticated; writes a redacted report), GET
/api/debug-report/<id>, /api/resolutions with resolve (404, 409), and
/api/audit (filters, pages; dashboard actions recorded as dashboard:bearer).
Then the Reports and Audit pages in a real Chromium: a report written from
the form, resolved from the list, and the audit trail filtered."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from fleet.config import load_config
from fleet.db import open_store
from tests.conftest import require_system_part
from tests.fakes.dashboard_env import REPO, DashboardProcess, write_config

SECRET = "dashEnvSecret-4d2c9a7b11"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def dash(isolated_home, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    write_config(isolated_home, dashboard={"enabled": False})  # (preflight: no dashboard service to check)
    logs = isolated_home / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "coder_1.log").write_text(f"2026-01-01 started with key {SECRET}\n2026-01-01 ready\n")
    store = open_store(load_config(isolated_home))
    store.register_agent("coder_1", "coder", status="idle")
    store.close()
    with DashboardProcess(isolated_home) as d:
        yield d


def test_debug_report_needs_the_token_and_is_redacted(dash):
    assert httpx.post(dash.base + "/api/debug-report", json={}, timeout=30).status_code == 401
    r = httpx.post(dash.base + "/api/debug-report", headers=dash.headers(), timeout=60,
                   json={"description": f"hangs; key {SECRET}", "steps": "1. open", "include_logs": True})
    assert r.status_code == 201, r.text
    out = r.json()
    path = Path(out["json_path"])
    assert path.parent == dash.home / "reports" / "debug" and out["status"] == "open"
    text = path.read_text()
    assert SECRET not in text and SECRET not in Path(out["md_path"]).read_text()
    report = json.loads(text)
    assert report["logs"]["coder_1.log"] == ["2026-01-01 started with key [redacted]", "2026-01-01 ready"]
    got = httpx.get(dash.base + f"/api/debug-report/{out['id']}", timeout=10).json()
    assert got["record"]["created_by"] == "dashboard:bearer" and got["report"]["versions"] == report["versions"]
    assert httpx.get(dash.base + "/api/debug-report/9999", timeout=10).status_code == 404
    bad = httpx.post(dash.base + "/api/debug-report", headers=dash.headers(), json={"include_logs": "yes"},
                     timeout=10)
    assert bad.status_code == 400


def test_resolutions_endpoint_lifecycle(dash):
    rid = httpx.post(dash.base + "/api/debug-report", headers=dash.headers(), json={"include_logs": False},
                     timeout=60).json()["id"]
    listed = httpx.get(dash.base + "/api/resolutions?status=open", timeout=10).json()["reports"]
    assert [r["id"] for r in listed] == [rid]
    url = dash.base + f"/api/resolutions/{rid}/resolve"
    assert httpx.post(url, json={"note": "x"}, timeout=10).status_code == 401
    assert httpx.post(url, headers=dash.headers(), json={}, timeout=10).status_code == 400
    r = httpx.post(url, headers=dash.headers(), json={"note": "restarted the model server", "fix_commit": "abc"},
                   timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["report"]["status"] == "resolved" and r.json()["report"]["resolved_by"] == "dashboard:bearer"
    assert httpx.post(url, headers=dash.headers(), json={"note": "again"}, timeout=10).status_code == 409
    assert httpx.post(dash.base + "/api/resolutions/9999/resolve", headers=dash.headers(), json={"note": "n"},
                      timeout=10).status_code == 404
    assert httpx.get(dash.base + "/api/resolutions?status=closed", timeout=10).status_code == 400


def test_audit_endpoint_shows_dashboard_actions(dash):
    h = dash.headers()
    assert httpx.post(dash.base + "/api/fleet/pause", headers=h, timeout=10).status_code < 300
    assert httpx.post(dash.base + "/api/fleet/worker/coder_1/pause", headers=h, timeout=10).status_code == 202
    assert httpx.post(dash.base + "/api/fleet/resume", headers=h, timeout=10).status_code < 300
    page = httpx.get(dash.base + "/api/audit", timeout=10).json()
    got = [(e["action"], e["actor"], e["via"], e["agent"]) for e in page["items"]]
    assert got == [("flag", "dashboard:bearer", "dashboard", None),
                   ("worker_pause", "dashboard:bearer", "dashboard", "coder_1"),
                   ("flag", "dashboard:bearer", "dashboard", None)]
    one = httpx.get(dash.base + "/api/audit?limit=1", timeout=10).json()
    two = httpx.get(dash.base + f"/api/audit?limit=1&before_id={one['next_before_id']}", timeout=10).json()
    assert [e["action"] for e in one["items"] + two["items"]] == ["flag", "worker_pause"]
    assert httpx.get(dash.base + "/api/audit?action=worker_pause", timeout=10).json()["items"][0]["agent"] == "coder_1"
    assert httpx.get(dash.base + "/api/audit?actor=operator", timeout=10).json()["items"] == []
    assert httpx.get(dash.base + "/api/audit?action=claim", timeout=10).status_code == 400
    assert httpx.get(dash.base + "/api/audit?since=2999-01-01", timeout=10).json()["items"] == []


# -- the pages in a real browser -------------------------------------------
@pytest.fixture
def page(dash):
    require_system_part(os.path.exists(CHROMIUM), "Chromium (Debian package 'chromium')",
                        "apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_system_part(False, "Playwright for Python", "pip install playwright")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        p = browser.new_page(viewport={"width": 1400, "height": 900})
        p.set_default_timeout(45000)
        p.goto(dash.base + "/signin?next=/reports")
        p.fill("#token", dash.token)
        p.click("#signin button[type=submit]")
        p.wait_for_url(dash.base + "/reports")
        p.wait_for_selector("#who >> text=sign out")
        yield p
        browser.close()


def _shot(p, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


@pytest.mark.browser
def test_report_issue_form_and_resolve_in_the_browser(dash, page):
    page.wait_for_selector("#r-none:not([hidden])")
    page.fill("#r-description", f"coder_1 keeps restarting (key {SECRET})")
    page.fill("#r-steps", "1. start the fleet\n2. wait a minute")
    page.click("#r-submit")
    new = page.wait_for_selector("#r-new")
    rid = int(new.get_attribute("data-report-id"))
    row = f'#reports tr[data-report-id="{rid}"]'
    page.wait_for_selector(f'{row}[data-status="open"]')
    assert SECRET not in page.content()
    store = open_store(load_config(dash.home))
    try:
        record = store.debug_report(rid)
    finally:
        store.close()
    assert record["created_by"] == "dashboard:cookie" and record["status"] == "open"
    text = (dash.home / record["path"]).read_text()
    assert SECRET not in text and "wait a minute" in text
    page.click(f"{row} button >> text=View")
    page.wait_for_selector("#r-view-body >> text=reproduction_steps")
    _shot(page, "reports-open")
    page.fill(f"{row} .r-note", "the model server was out of memory; raised its limit")
    page.fill(f"{row} .r-commit", "abc1234")
    page.click(f"{row} .r-resolve")
    page.wait_for_selector(f'{row}[data-status="resolved"]')
    page.wait_for_selector(f"{row} >> text=raised its limit")
    _shot(page, "reports-resolved")
    page.select_option("#r-status", "open")
    page.wait_for_selector("#r-none:not([hidden])")


@pytest.mark.browser
def test_audit_page_lists_and_filters(dash, page):
    h = dash.headers()
    httpx.post(dash.base + "/api/fleet/pause", headers=h, timeout=10)
    httpx.post(dash.base + "/api/fleet/worker/coder_1/pause", headers=h, timeout=10)
    httpx.post(dash.base + "/api/fleet/resume", headers=h, timeout=10)
    store = open_store(load_config(dash.home))
    try:
        for i in range(30):
            store.record_event("operator", "secret_set", detail={"key": f"KEY_{i}"})
    finally:
        store.close()
    page.goto(dash.base + "/audit")
    page.wait_for_selector('#audit tr[data-action="secret_set"]')
    assert page.locator("#audit tr").count() == 25
    assert page.locator("#audit tr").first.inner_text().count("KEY_29") == 1
    _shot(page, "audit")
    page.click("#a-older")
    page.wait_for_selector("#a-page >> text=page 2")
    page.wait_for_selector('#audit tr[data-action="worker_pause"]')
    assert page.locator("#audit tr").count() == 8  # 33 actions: 25 + 8
    page.select_option("#a-action", "worker_pause")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#audit tr').length === 1")
    assert "coder_1" in page.locator("#audit tr").first.inner_text()
    assert "dashboard:bearer" in page.locator("#audit tr").first.inner_text()
    page.fill("#a-actor", "launcher")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#a-none:not([hidden])")
    _shot(page, "audit-filtered")
