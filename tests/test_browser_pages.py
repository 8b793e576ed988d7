"""Every dashboard page in a real headless Chromium against a real dashboard
process over a prepared store (offline mode, no workers): the overview's
charts, activity feed and alert order; the tasks page's scheduled state,
worker column, bulk button and sorting; task detail (no empty blocks, not
found, tracebacks); submit (internal fields hidden, a default the mode
allows); approvals (one set of buttons, compact rows, pages); hardware in
GiB with labels clear of their bars; usage charts and the empty-budgets
hint; logs search and crash output; messages filters and pages; the
favicon; and every page at 1280 px and at 390 px (nav collapsed, no
sideways overflow), each screenshotted into test-artifacts/."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from fleet.db import open_store
from tests.fakes.dashboard_env import REPO, DashboardProcess, make_app, write_config
from tests.fakes.fleetproc import env_for
from tests.test_browser_dashboard import ARTIFACTS, browser  # noqa: F401 (the module-scoped Chromium fixture)

pytestmark = pytest.mark.browser
TRACEBACK = 'Traceback (most recent call last):\n  File "skill.py", line 3, in run\n    boom()\nValueError: boom'
PAGES = {"overview": "/", "tasks": "/tasks", "task": "/tasks/{failed}", "task-missing": "/tasks/987654",
         "submit": "/submit", "approvals": "/approvals", "hardware": "/hardware", "usage": "/usage",
         "knowledge": "/knowledge", "logs": "/logs", "messages": "/messages", "reports": "/reports",
         "audit": "/audit", "signin": "/signin"}


def _prepare(store, home) -> dict:
    store.register_agent("coder_1", "coder", pid=1, status="idle")
    for st in ("busy", "idle", "busy", "idle") * 10:  # agent_status noise: 40 events
        store.set_agent_status("coder_1", st)
    done = store.enqueue("noop", {"n": 1})
    t = store.claim("coder_1", ["noop"])
    store.complete(t.id, t.lease_token, {"ok": True})
    failed = store.enqueue("fails", {"n": 2}, max_attempts=1)
    t = store.claim("coder_1", ["fails"])
    store.fail(t.id, t.lease_token, TRACEBACK, retryable=False)
    scheduled = store.enqueue("noop", {"n": 3}, delay_s=7200)
    ghost = store.enqueue("noop", {"n": 4}, assigned_to="ghost_worker")
    waiting = []
    for i in range(103):  # beyond one page of 100
        store.enqueue("ask", {"topic": f"t{i}"})
        t = store.claim("coder_1", ["ask"])
        store.ask_human(t.id, t.lease_token, f"Deploy change {i} to production?",
                        options=["yes", "no"] if i == 0 else None)
        waiting.append(t.id)
    bulk = [store.enqueue("sleepy", {"n": i}).id for i in range(3)]
    store.cancel(store.enqueue("noop", {"n": 5}).id, by="operator")  # an operator event for the feed
    for sev in ("info", "critical", "warning"):
        store.raise_alert(sev, "browser-test", f"a {sev} alert")
    now = time.time()
    for day in range(3):
        store.record_model_call({"ts": now - day * 86400, "skill": "noop", "provider": "claude", "model": "m",
                                 "input_tokens": 1000 * (day + 1), "output_tokens": 200, "cost_usd": 0.5 * (day + 1),
                                 "success": True})
    for i in range(70):
        store.send_message("coder_1" if i % 2 else "planner", "researcher", f"message {i}")
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "coder_1.log").write_text("".join(f"2026-01-01 line {i} task {i}\n" for i in range(50)) + "ERROR special\n")
    (logs / "coder_1.out").write_text("Traceback (most recent call last):\nRuntimeError: crashed at start\n")
    return {"done": done.id, "failed": failed.id, "scheduled": scheduled.id, "ghost": ghost.id, "waiting": waiting,
            "bulk": bulk}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("pages_home")
    cfg = write_config(home, fleet={"offline_mode": True})
    store = open_store(cfg)
    ids = _prepare(store, home)
    subprocess.run([sys.executable, str(REPO / "fleet" / "hw_supervisor.py"), "--once", "--no-store"],
                   cwd=str(REPO), env=env_for(home), check=True, timeout=60, capture_output=True)
    with DashboardProcess(home) as d:
        yield {"base": d.base, "token": d.token, "store": store, "ids": ids, "home": home}
    store.close()


@pytest.fixture(scope="module")
def ctx(browser, site):  # noqa: F811
    """A signed-in browser context (1280 px wide)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30000)
    page.goto(site["base"] + "/signin?next=/")
    page.fill("#token", site["token"])
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#who >> text=sign out")
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(ctx):
    p = ctx.new_page()
    p.set_default_timeout(30000)
    yield p
    p.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)


def test_overview_charts_have_axes_and_values_the_feed_skips_agent_noise_alerts_by_severity(page, site):
    page.goto(site["base"] + "/")
    page.wait_for_selector("#spark-done text.ylab")
    assert page.locator("#spark-done .axis").count() == 2
    assert page.locator("#spark-done text.xlab").count() >= 2  # times under the axis
    assert page.locator("#spark-done circle.pt title").count() > 1  # each point says its value
    assert page.inner_text("#spark-done-n") == "1"
    page.wait_for_selector("#activity li")
    actions = page.eval_on_selector_all("#activity li", "(els) => els.map((e) => e.dataset.action)")
    assert "agent_status" not in actions, actions
    assert "cancel" in actions or "cancelled" in actions or "enqueue" in actions, actions
    page.wait_for_selector("#alerts li.alert")
    sev = page.eval_on_selector_all("#alerts li.alert .badge", "(els) => els.map((e) => e.textContent)")
    assert sev == ["critical", "warning", "info"], sev


def test_a_burst_of_task_events_refetches_the_heavy_aggregates_once(page, site):
    """SSE-triggered refetches are coalesced: 30 task changes in a second
    cost the overview at most one timeline and one activity refetch."""
    page.goto(site["base"] + "/")
    page.wait_for_selector("#live:not(.off)")
    page.wait_for_selector("#spark-done text.ylab")
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    store = site["store"]
    for i in range(30):
        store.cancel(store.enqueue("noop", {"burst": i}).id)
        time.sleep(0.03)
    page.wait_for_timeout(2500)
    timeline = [u for u in seen if "/api/timeline" in u]
    activity = [u for u in seen if "/api/activity" in u]
    status = [u for u in seen if "/api/status" in u]
    assert 1 <= len(activity) <= 2 and len(timeline) <= 1 and len(status) <= 4, (timeline, activity, status)


def test_tasks_scheduled_state_worker_column_sorting(page, site):
    ids = site["ids"]
    page.goto(site["base"] + "/tasks?skill=noop")
    row = f'#tasks tr[data-task-id="{ids["scheduled"]}"]'
    page.wait_for_selector(f'{row}[data-status="SCHEDULED"]')
    assert "due" in page.inner_text(f"{row} td:nth-child(3)")
    ghost = f'#tasks tr[data-task-id="{ids["ghost"]}"] td.worker'
    assert "no such agent" in page.inner_text(ghost) and page.inner_text(ghost) != "ghost_worker"
    assert page.inner_text(f'#tasks tr[data-task-id="{ids["done"]}"] td.worker') == "coder_1"
    first = lambda: int(page.get_attribute("#tasks tbody tr:first-child", "data-task-id"))  # noqa: E731
    assert first() == max(int(x) for x in page.eval_on_selector_all(
        "#tasks tbody tr", "(els) => els.map((e) => e.dataset.taskId)"))
    page.click('#tasks th[data-sort="id"]')  # newest first already: a click sorts ascending
    assert first() == ids["done"]
    page.click('#tasks th[data-sort="status"]')
    statuses = page.eval_on_selector_all("#tasks tbody tr", "(els) => els.map((e) => e.dataset.status)")
    assert statuses == sorted(statuses), statuses
    _shot(page, "tasks-sorted")


def test_bulk_button_says_what_it_does_and_does_it(page, site):
    ids = site["ids"]["bulk"]
    store = site["store"]
    page.goto(site["base"] + "/tasks")
    page.wait_for_selector("#tasks tbody tr")
    assert page.is_disabled("#bulk-go")  # no filter: never every task
    # retry counts only the finished tasks of the filter (pending ones cannot be retried)
    page.goto(site["base"] + "/tasks?skill=noop")
    finished = len(store.matching_ids(skill="noop", status=["DONE", "FAILED", "CANCELLED"]))
    assert finished < store.list_tasks(skill="noop").total
    page.wait_for_function(f"() => document.getElementById('bulk-go').textContent === "
                           f"'Retry {finished} finished tasks matching this filter'")
    page.goto(site["base"] + "/tasks?skill=sleepy")
    page.wait_for_selector(f'#tasks tr[data-task-id="{ids[-1]}"]')
    page.select_option("#bulk-action", "retry")
    page.wait_for_function("() => document.getElementById('bulk-go').textContent === "
                           "'No finished tasks here to retry'")
    assert page.is_disabled("#bulk-go")
    page.select_option("#bulk-action", "cancel")
    page.wait_for_function("() => document.getElementById('bulk-go').textContent === "
                           "'Cancel 3 unfinished tasks matching this filter'")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#bulk-go")
    page.wait_for_selector("#toast.show >> text=3 of 3 done")
    assert all(site["store"].get(i).status == "CANCELLED" for i in ids)


def test_task_detail_has_no_empty_blocks_keeps_traceback_lines_and_missing_is_not_found(page, site):
    ids = site["ids"]
    page.goto(site["base"] + f"/tasks/{ids['failed']}")
    page.wait_for_selector("#status >> text=FAILED")
    assert page.inner_text("#error") == TRACEBACK  # line breaks kept
    assert page.is_hidden("#result-box")  # no result: no empty block
    dds = page.eval_on_selector_all("#fields dd", "(els) => els.map((e) => e.textContent)")
    assert "–" not in dds and "" not in dds, dds
    assert page.eval_on_selector("#attempts pre.tb", "(e) => getComputedStyle(e).whiteSpace") == "pre-wrap"
    page.goto(site["base"] + "/tasks/987654")
    page.wait_for_selector("#status >> text=not found")
    assert page.is_visible("#not-found")
    assert not page.is_visible(".controls button[data-act=retry]")
    assert not page.is_visible(".controls button[data-act=cancel]")
    assert page.locator(".task-block:visible").count() == 0


def test_submit_hides_internal_fields_and_defaults_to_an_allowed_skill(page, site):
    page.goto(site["base"] + "/submit")
    page.wait_for_selector("#skill option", state="attached")
    skills = httpx.get(site["base"] + "/api/skills", timeout=10).json()["skills"]
    refused = {s["name"] for s in skills if s.get("mode_refusal")}
    assert "arxiv_fetch" in refused and "netskill" in refused  # offline mode: network skills
    assert page.input_value("#skill") not in refused
    page.goto(site["base"] + "/submit?skill=code_review")
    page.wait_for_selector("#payload-fields .field")
    assert page.locator("#f-human_answer").count() == 0 and page.locator("#f-human_question").count() == 0


def test_air_gap_mode_refuses_skills_outside_its_allowed_list(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_HOME", str(tmp_path))
    app, _cfg, store = make_app(tmp_path, fleet={"air_gap_mode": True}, air_gap={"allowed_skills": ["noop"]})
    skills = {s["name"]: s for s in app.test_client().get("/api/skills").get_json()["skills"]}
    store.close()
    assert skills["noop"]["mode_refusal"] is None
    assert "air-gap" in skills["summarize"]["mode_refusal"]


def test_approvals_compact_rows_one_set_of_buttons_and_pages(page, site):
    waiting = site["ids"]["waiting"]
    page.goto(site["base"] + "/approvals")
    page.wait_for_selector("details.approval")
    assert page.locator("details.approval").count() == 100
    assert page.inner_text("#count") == "103"
    assert page.locator("details.approval[open]").count() == 0  # compact until opened
    plain = f'details.approval[data-task-id="{waiting[5]}"]'
    page.click(f"{plain} summary")
    assert page.locator(f"{plain} button:visible").count() == 4  # approve, reject, more info, feedback
    _shot(page, "approvals-open")
    with_options = f'details.approval[data-task-id="{waiting[0]}"]'
    page.goto(site["base"] + "/approvals")
    page.click("#next")
    page.wait_for_selector(with_options)
    page.click(f"{with_options} summary")
    labels = page.eval_on_selector_all(f"{with_options} button", "(els) => els.map((e) => e.textContent)")
    assert labels == ["yes", "no", "Need more info", "Send feedback"], labels  # its options, not approve/reject
    assert page.inner_text("#pageinfo") == "101–103 of 103"


def test_hardware_in_gib_and_labels_clear_of_bars(page, site):
    page.goto(site["base"] + "/hardware")
    page.wait_for_selector("#mem .meter")
    assert "GiB" in page.inner_text("#mem") and "MiB" not in page.inner_text("body")
    for meter in page.query_selector_all(".meter"):
        label, bar = meter.query_selector(".meter-label").bounding_box(), meter.query_selector(".bar").bounding_box()
        assert label["y"] + label["height"] <= bar["y"] + 0.5, (label, bar)


def test_usage_draws_cost_and_token_charts_and_explains_empty_budgets(page, site):
    page.goto(site["base"] + "/usage")
    page.wait_for_selector("#cost-chart rect.col", state="attached")
    assert page.locator("#cost-chart rect.col").count() == 14 and page.locator("#tokens-chart rect.col").count() == 14
    assert page.inner_text("#cost-total").startswith("$3.0000")
    assert page.is_visible("#no-budgets") and "[budgets]" in page.inner_text("#no-budgets")


def test_logs_search_and_crash_output(page, site):
    page.goto(site["base"] + "/logs")
    page.wait_for_function("() => document.getElementById('logtext').textContent.includes('line 3')")
    page.fill("#search", "ERROR")
    assert page.inner_text("#logtext") == "ERROR special"
    assert "1 of 51" in page.inner_text("#matches")
    page.select_option("#logname", "coder_1.out")
    page.wait_for_function("() => document.getElementById('logtext').textContent === ''  ||"
                           " document.getElementById('matches').textContent.includes('of 2')")
    page.fill("#search", "")
    page.wait_for_function("() => document.getElementById('logtext').textContent.includes('crashed at start')")


def test_messages_filter_and_pages(page, site):
    page.goto(site["base"] + "/messages")
    page.wait_for_selector("#messages tbody tr")
    assert page.locator("#messages tbody tr").count() == 50
    page.click("#msg-older")
    page.wait_for_function("() => document.querySelectorAll('#messages tbody tr').length === 20")
    assert page.is_disabled("#msg-older")
    page.click("#msg-newer")
    page.fill("#agent", "planner")
    page.click("#msg-filter button")
    page.wait_for_function("() => document.querySelectorAll('#messages tbody tr').length === 35")
    senders = page.eval_on_selector_all("#messages tbody tr td:nth-child(3)", "(els) => els.map((e) => e.textContent)")
    assert set(senders) == {"planner"}


def test_favicon(page, site):
    page.goto(site["base"] + "/")
    href = page.get_attribute("link[rel=icon]", "href")
    resp = httpx.get(site["base"] + href, timeout=10)
    assert resp.status_code == 200 and b"<svg" in resp.content


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_at_desktop_and_phone_width(browser, ctx, site, width):  # noqa: F811
    page = ctx.new_page()
    page.set_default_timeout(30000)
    page.set_viewport_size({"width": width, "height": 800})
    try:
        for name, path in PAGES.items():
            page.goto(site["base"] + path.format(**site["ids"]))
            page.wait_for_load_state("networkidle")
            if width == 390:
                assert not page.is_visible("header nav a"), f"{name}: the nav is not collapsed"
                over = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                assert over <= 0, f"{name} overflows sideways by {over} px at 390 px"
            _shot(page, f"{name}-{width}")
        if width == 390:
            page.click("#nav-toggle")
            assert page.is_visible("header nav a >> text=Tasks")
            _shot(page, "nav-open-390")
    finally:
        page.close()
