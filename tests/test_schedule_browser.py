"""The overview's Schedules card in a real browser (headless Chromium): a
scheduled run appears with its task link and outcome, and a paused schedule
says so, without a reload."""

from __future__ import annotations

import httpx
import pytest

from fleet.db import open_store
from tests.fakes.cli_runner import cli
from tests.fakes.dashboard_env import free_port, wait_until, write_config
from tests.fakes.fleetproc import start_supervisor, stop
from tests.test_browser_dashboard import _signed_in_page, browser  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def scheduled_fleet(isolated_home):
    port = free_port()
    cfg = write_config(isolated_home, workers={"coder_count": 1}, affinity={"coder": ["noop"]},
                       supervisor={"services": ["dashboard"]}, dashboard={"port": port, "poll_s": 0.1},
                       schedule={"tick": {"skill": "noop", "every": "2s"},
                                 "nightly": {"skill": "noop", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}})
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


def test_schedules_card_shows_runs_and_pause(browser, scheduled_fleet):  # noqa: F811
    page = _signed_in_page(browser, scheduled_fleet)
    page.wait_for_selector("#schedules-card:not([hidden])")
    page.wait_for_selector('#schedules tr[data-schedule="tick"] >> text=DONE')
    nightly = page.locator('#schedules tr[data-schedule="nightly"]')
    assert "cron 0 3 * * * (Europe/Berlin)" in nightly.inner_text() and "never" in nightly.inner_text()
    assert cli(scheduled_fleet["home"], "schedule", "pause", "nightly").rc == 0
    page.wait_for_selector('#schedules tr[data-schedule="nightly"] >> text=paused')
    page.close()
