"""The dashboard in a real headless Chromium against a real fleet on loopback
(supervisor + a coder worker + the dashboard and hardware supervisor as its
managed services, in a temp fleet home): sign in, the overview loads, a task
dispatched from the CLI appears without a reload, a task submitted through
the form runs, an approval made in the UI resumes its task, a bulk cancel is
confirmed with its count, alerts are acknowledged, live updates pause while
the tab is hidden, the hardware page shows the tier. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from fleet.db import open_store
from tests.conftest import require_system_part
from tests.fakes.dashboard_env import REPO, free_port, wait_until, write_config
from tests.fakes.fleetproc import env_for, start_supervisor, stop

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    require_system_part(os.path.exists(CHROMIUM), "Chromium (Debian package 'chromium')",
                        "apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_system_part(False, "Playwright for Python", "pip install playwright")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def fleet(isolated_home):
    port = free_port()
    cfg = write_config(isolated_home, workers={"coder_count": 1}, affinity={"coder": ["noop", "ask"]},
                       supervisor={"services": ["dashboard", "hw_supervisor"]},
                       dashboard={"port": port, "poll_s": 0.1}, hardware={"interval_s": 1.0})
    sup = start_supervisor(isolated_home)
    base = f"http://127.0.0.1:{port}"
    store = open_store(cfg)

    def up():
        if sup.poll() is not None:
            raise AssertionError(f"supervisor exited: {sup.communicate()}")
        try:
            return httpx.get(base + "/api/status", timeout=2).json()["agents"]
        except (httpx.HTTPError, ValueError):
            return False

    try:
        wait_until(lambda: any(a["name"] == "coder_1" and a["status"] == "idle" for a in (up() or [])),
                   timeout=60, step=0.2, what="the fleet and its dashboard")
        yield {"home": isolated_home, "base": base, "store": store,
               "token": (isolated_home / "dashboard.token").read_text().strip()}
    finally:
        store.close()
        stop(sup, timeout=30)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _signed_in_page(browser, fleet):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(45000)  # generous: the CI box may be busy
    page.goto(fleet["base"] + "/signin?next=/")
    page.fill("#token", fleet["token"])
    page.click("#signin button[type=submit]")
    page.wait_for_url(fleet["base"] + "/")
    page.wait_for_selector("#who >> text=sign out")
    return page


def test_overview_loads_and_lists_the_worker(browser, fleet):
    page = _signed_in_page(browser, fleet)
    page.wait_for_selector('#agents tr[data-agent="coder_1"]')
    assert page.locator("#counts a").count() == 6
    page.wait_for_selector("#live:not(.off)")
    _shot(page, "overview")
    page.close()


def test_cli_dispatch_appears_without_reload_and_runs(browser, fleet):
    page = _signed_in_page(browser, fleet)
    page.goto(fleet["base"] + "/tasks")
    page.wait_for_selector("#live:not(.off)")
    marker = page.evaluate("() => { window.__marker = Math.random(); return window.__marker; }")
    out = subprocess.run([sys.executable, str(REPO / "fleet" / "lead_client.py"), "dispatch", "noop", '{"n": 41}'],
                         cwd=str(REPO), env=env_for(fleet["home"]), capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    task_id = max(t.id for t in fleet["store"].list_tasks(skill="noop").items)
    row = f'#tasks tr[data-task-id="{task_id}"]'
    page.wait_for_selector(row)
    page.wait_for_selector(f'{row}[data-status="DONE"]')
    assert page.evaluate("() => window.__marker") == marker  # the same page: no reload happened
    _shot(page, "tasks")
    page.close()


def test_task_submitted_through_the_form_runs(browser, fleet):
    page = _signed_in_page(browser, fleet)
    page.goto(fleet["base"] + "/submit?skill=noop")
    page.wait_for_selector("#f-n")
    if page.locator("#instruction").count():  # the intent parser fills the form (JSON bypasses the model)
        page.fill("#instruction", '{"skill": "noop", "payload": {"n": 3}}')
        page.click("#intent-form button")
        page.wait_for_selector("#intent-out >> text=Understood as noop")
        assert page.input_value("#f-n") == "3"
    page.fill("#f-n", "7")
    page.click("#submit-btn")
    link = page.wait_for_selector("#submitted-link")
    task_id = int(link.get_attribute("data-task-id"))
    page.wait_for_selector("#submitted-status >> text=DONE")
    task = fleet["store"].get(task_id)
    assert task.status == "DONE" and task.result == {"n": 7, "ok": True}
    _shot(page, "submit")
    page.close()


def test_approval_in_the_ui_resumes_the_task(browser, fleet):
    store = fleet["store"]
    task = store.enqueue("ask", {"topic": "deploy"})
    wait_until(lambda: store.get(task.id).status == "WAITING_HUMAN", timeout=30, what="the task to ask a person")
    page = _signed_in_page(browser, fleet)
    page.goto(fleet["base"] + "/approvals")
    card = f'.approval[data-task-id="{task.id}"]'
    page.wait_for_selector(card)
    page.click(f"{card} summary")  # a compact row: open it to answer
    page.fill(f"{card} textarea", "looks fine")
    _shot(page, "approvals")
    # The question has options (yes/no): its one set of buttons is those options, "Need more info" and
    # "Send feedback".
    page.click(f"{card} >> text=Send feedback")
    page.wait_for_selector(card, state="detached")
    done = wait_until(lambda: store.get(task.id).status == "DONE" and store.get(task.id), timeout=30,
                      what="the answered task to finish")
    assert done.result == {"answer": {"choice": "feedback", "text": "looks fine"}}
    page.goto(fleet["base"] + f"/tasks/{task.id}")
    page.wait_for_selector("#status >> text=DONE")
    assert json.loads(page.inner_text("#result")) == done.result
    _shot(page, "task-detail")
    # The question's own options answer with exactly that option.
    second = store.enqueue("ask", {"topic": "rollback"})
    wait_until(lambda: store.get(second.id).status == "WAITING_HUMAN", timeout=30, what="the second question")
    page.goto(fleet["base"] + "/approvals")
    card = f'.approval[data-task-id="{second.id}"]'
    page.click(f"{card} summary")
    page.click(f"{card} .options button:text-is('no')")
    done = wait_until(lambda: store.get(second.id).status == "DONE" and store.get(second.id), timeout=30,
                      what="the option-answered task to finish")
    assert done.result == {"answer": "no"}
    page.close()


def test_controls_refuse_before_sign_in(browser, fleet):
    page = browser.new_page()
    page.set_default_timeout(45000)
    page.goto(fleet["base"] + "/")
    page.wait_for_selector('#agents tr[data-agent="coder_1"]')
    page.click("#fleet-controls >> text=Pause")
    page.wait_for_selector("#toast.show >> text=Sign in first")
    assert fleet["store"].get_flag("paused", False) is False
    page.close()


def test_bulk_cancel_confirms_the_count(browser, fleet):
    store = fleet["store"]
    ids = [store.enqueue("noop", {"n": i}, delay_s=3600).id for i in range(3)]
    page = _signed_in_page(browser, fleet)
    page.goto(fleet["base"] + "/tasks?skill=noop&status=PENDING")
    page.wait_for_selector(f'#tasks tr[data-task-id="{ids[-1]}"]')
    seen = []

    def on_dialog(dialog):
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)
    page.select_option("#bulk-action", "cancel")
    page.click("#bulk-go")
    page.wait_for_selector("#toast.show >> text=cancel: 3 of 3 done")
    assert seen and "3 task(s)" in seen[0]
    assert all(store.get(i).status == "CANCELLED" for i in ids)
    page.close()


def test_alert_acknowledged_from_the_overview(browser, fleet):
    aid = fleet["store"].raise_alert("warning", "browser-test", "please acknowledge me")
    page = _signed_in_page(browser, fleet)
    item = f'#alerts li[data-alert-id="{aid}"]'
    page.wait_for_selector(item)
    page.click(f"{item} >> text=acknowledge")
    page.wait_for_selector(item, state="detached")
    assert fleet["store"].list_alerts(active_only=False)[0]["acked_at"] is not None
    page.close()


def test_live_updates_pause_while_the_tab_is_hidden(browser, fleet):
    page = _signed_in_page(browser, fleet)
    page.wait_for_selector("#live:not(.off)")
    hide = """(hidden) => { Object.defineProperty(document, 'hidden', {value: hidden, configurable: true});
                          document.dispatchEvent(new Event('visibilitychange')); }"""
    page.evaluate(hide, True)
    page.wait_for_selector("#live.off")
    task = fleet["store"].enqueue("noop", {"n": 99}, delay_s=3600)
    page.wait_for_timeout(1500)
    assert page.inner_text("#counts a[data-status=PENDING] b") == "0"  # no refresh while hidden
    page.evaluate(hide, False)
    page.wait_for_selector("#live:not(.off)")
    page.wait_for_function("() => document.querySelector('#counts a[data-status=PENDING] b').textContent === '1'")
    fleet["store"].cancel(task.id)
    page.close()


def test_hardware_page_shows_tier_and_host(browser, fleet):
    page = _signed_in_page(browser, fleet)
    assert page.locator("header nav >> text=Hardware").count() > 0, "the Hardware page is missing from the nav"
    wait_until(lambda: not httpx.get(fleet["base"] + "/api/thermal", timeout=5).json()["stale"], timeout=30,
               what="a fresh hw_state.json from the hardware supervisor")
    page.goto(fleet["base"] + "/hardware")
    page.wait_for_function("() => document.getElementById('tier').textContent.length > 1")
    assert page.inner_text("#stale") == ""
    assert "cores" in page.inner_text("#cpu")
    _shot(page, "hardware")
    page.close()


def test_overview_shows_hosts_a_lost_host_and_filters_by_host(browser, fleet):
    """A second host that shares the store and went dark: the overview's Hosts
    table shows it lost, its agent 'lost (was busy)', and the host filter
    narrows the agents table to one host."""
    import time as _time

    store = fleet["store"]
    store.register_agent("coder_1@host-b", "coder", pid=4343, host="host-b", status="busy")
    store.register_agent("hw_supervisor@host-b", "hw_supervisor", pid=4344, host="host-b", status="running")
    with store._write() as conn:  # host-b's last heartbeat, 10 minutes ago (test set-up only)
        conn.execute("UPDATE agents SET last_heartbeat = ? WHERE host = 'host-b'", (_time.time() - 600,))
    page = _signed_in_page(browser, fleet)
    page.wait_for_selector('#hosts-table tr[data-host="host-b"][data-state="lost"]')
    assert page.is_visible("#hosts") and page.is_visible("#agents th.host-col")
    row = page.inner_text('#agents tr[data-agent="coder_1@host-b"]')
    assert "lost (was busy)" in row and "host-b" in row, row
    _shot(page, "overview-hosts")
    page.select_option("#host-filter", "host-b")
    page.wait_for_function("() => !document.querySelector('#agents tr[data-agent=\"coder_1\"]')")
    assert page.locator('#agents tr[data-agent="coder_1@host-b"]').count() == 1
    page.close()
    store.remove_agent("coder_1@host-b")
    store.remove_agent("hw_supervisor@host-b")


def test_overview_names_the_config_and_marks_a_worker_on_an_older_one(browser, fleet):
    import tomlkit

    page = _signed_in_page(browser, fleet)
    page.wait_for_selector('#agents tr[data-agent="coder_1"]')
    before = httpx.get(fleet["base"] + "/api/status", timeout=5).json()["config_hash"]
    page.wait_for_selector(f"#config-hash >> text=config {before}")
    toml = fleet["home"] / "fleet.toml"
    doc = tomlkit.parse(toml.read_text())
    doc["queue"]["lease_s"] = 9.0
    toml.write_text(tomlkit.dumps(doc))
    page.wait_for_selector('#agents tr[data-agent="coder_1"] >> text=stale config')
    assert "restart --stale" in page.inner_text("#config-hash")
    _shot(page, "overview-stale-config")
    page.close()


def test_fleet_controls_work_from_the_overview(browser, fleet):
    store = fleet["store"]
    page = _signed_in_page(browser, fleet)
    row = '#agents tr[data-agent="coder_1"]'
    page.wait_for_selector(row)
    page.click("#fleet-controls >> text=Pause")
    wait_until(lambda: store.get_flag("paused", False) is True, timeout=15, what="the pause flag")
    page.wait_for_selector("#fleet-state >> text=paused")
    page.click("#fleet-controls >> text=Resume")
    wait_until(lambda: store.get_flag("paused", True) is False, timeout=15, what="the pause flag to clear")
    old_pid = store.get_agent("coder_1")["pid"]
    page.click(f"{row} >> text=restart")
    page.wait_for_selector("#toast.show >> text=Restart sent to coder_1")
    new = wait_until(lambda: (a := store.get_agent("coder_1")) and a["pid"] != old_pid and a["status"] == "idle" and a,
                     timeout=45, step=0.2, what="the supervisor to restart coder_1")
    assert new["pid"] != old_pid
    page.wait_for_selector(f'{row} td:nth-child(6) >> text=1')  # restarts in the last hour, live
    page.on("dialog", lambda dialog: dialog.accept())  # "Stop every worker?"
    page.click("#fleet-controls >> text=Stop fleet")
    wait_until(lambda: store.get_agent("coder_1")["status"] == "stopped", timeout=45, step=0.2,
               what="the worker to stop")
    page.wait_for_selector(f'{row} >> text=stopped')
    page.click("#fleet-controls >> text=Start fleet")
    wait_until(lambda: store.get_agent("coder_1")["status"] == "idle", timeout=45, step=0.2,
               what="the worker to start again")
    page.close()


def test_every_page_renders_without_script_errors(browser, fleet):
    home = fleet["home"]
    (home / "knowledge" / "notes").mkdir(parents=True, exist_ok=True)
    (home / "knowledge" / "notes" / "hello.md").write_text("# hello from a skill\n")
    fleet["store"].post_note("ops", "a note for the page")
    page = _signed_in_page(browser, fleet)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("console", lambda msg: errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
    links = page.eval_on_selector_all("header nav a", "els => els.map(e => e.getAttribute('href'))")
    assert {"/", "/tasks", "/submit", "/approvals", "/knowledge", "/logs", "/messages"} <= set(links)
    for href in links:
        page.goto(fleet["base"] + href)
        page.wait_for_load_state("networkidle")
    page.goto(fleet["base"] + "/knowledge")
    page.click("#files >> text=notes/hello.md")
    page.wait_for_selector("#content >> text=hello from a skill")
    page.goto(fleet["base"] + "/logs")
    page.wait_for_function("() => document.getElementById('logtext').textContent.length > 0")
    page.goto(fleet["base"] + "/messages")
    page.wait_for_selector("#notes >> text=a note for the page")
    _shot(page, "messages")
    assert errors == []
    page.close()


def test_workflows_page_lists_a_workflow_and_shows_its_history(browser, fleet):
    store = fleet["store"]
    wf = store.create_workflow("/repo", "Fix the off-by-one in pagination", base="main",
                               state={"plan": {"criteria": ["three items per page"]}}, budget_usd=2.0)
    store.advance_workflow(wf["id"], 0, finished="plan", outcome="planned", phase="approve",
                           usage={"input_tokens": 40, "output_tokens": 9, "cost_usd": 0.0125, "model_calls": 1})
    page = _signed_in_page(browser, fleet)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(fleet["base"] + "/workflows")
    row = page.wait_for_selector(f'#workflows tr[data-id="{wf["id"]}"]')
    assert "Fix the off-by-one" in row.inner_text() and "0.0125 / 2.00" in row.inner_text()
    row.click()
    page.wait_for_selector("#history >> text=planned")
    assert "three items per page" in page.inner_text("#plan")
    assert page.inner_text("#detail-title") == f"Workflow {wf['id']}: Fix the off-by-one in pagination"
    assert errors == []
    _shot(page, "workflows")
    page.close()
