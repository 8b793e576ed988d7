"""Dashboard security in a real headless Chromium against a real dashboard
process: signing in with a crafted `next` (backslash, tab) stays on this
site, and every page runs under the Content-Security-Policy without a single
violation (no inline script, no inline style attribute, no inline handler)."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse

import pytest

from tests.fakes.dashboard_env import REPO, DashboardProcess, write_config
from tests.fakes.fleetproc import env_for
from tests.test_browser_dashboard import browser  # noqa: F401 (the module-scoped Chromium fixture)

pytestmark = pytest.mark.browser
PAGES = ["/", "/tasks", "/tasks/1", "/submit", "/approvals", "/hardware", "/usage", "/knowledge", "/logs",
         "/messages", "/signin"]
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));
"""


@pytest.fixture
def dash(isolated_home):
    cfg = write_config(isolated_home)
    from fleet.db import open_store

    store = open_store(cfg)
    store.enqueue("noop", {"n": 1})
    store.close()
    # a real hw_state.json, so that the hardware page draws its bars (their widths are styles)
    subprocess.run([sys.executable, str(REPO / "fleet" / "hw_supervisor.py"), "--once", "--no-store"],
                   cwd=str(REPO), env=env_for(isolated_home), check=True, timeout=60, capture_output=True)
    with DashboardProcess(isolated_home) as d:
        yield d


def test_sign_in_with_a_crafted_next_stays_on_this_site(browser, dash):  # noqa: F811
    page = browser.new_page()
    hits = []
    page.route("**/*", lambda route: (hits.append(route.request.url), route.fulfill(body="EVIL"))
               if urllib.parse.urlsplit(route.request.url).hostname == "evil.example" else route.continue_())
    try:
        for crafted in ("%2F%5Cevil.example%2Fx", "/%09/evil.example/x"):
            page.goto(f"{dash.base}/signin?next={crafted}")
            page.fill("#token", dash.token)
            page.click("#signin button[type=submit]")
            page.wait_for_url(lambda url: "/signin" not in url)
            page.wait_for_load_state("load")
            assert page.url == dash.base + "/", page.url
            assert not hits, hits
            page.context.clear_cookies()
    finally:
        page.close()


def test_every_page_runs_under_the_csp_without_a_violation(browser, dash):  # noqa: F811
    context = browser.new_context()
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    try:
        page.goto(dash.base + "/signin")
        page.fill("#token", dash.token)
        page.click("#signin button[type=submit]")
        page.wait_for_url(dash.base + "/")
        for path in PAGES:
            response = page.goto(dash.base + path)
            assert response is not None and response.status == 200, path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(200)
            assert page.evaluate("window.__csp") == [], path
            if path == "/hardware":  # the bars are drawn, with their widths
                page.wait_for_selector("#mem .bar span")
                assert page.evaluate("document.querySelector('#mem .bar span').style.width").endswith("%")
                assert page.evaluate("window.__csp") == [], path
        # an inline script really is refused (the policy is enforced, not just sent)
        page.goto(dash.base + "/")
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.textContent = 'window.__ran = true'; document.body.append(s); }""")
        assert page.evaluate("window.__ran === undefined")
        assert page.evaluate("window.__csp.length") >= 1
    finally:
        context.close()
