"""The dashboard's Workflows page and its JSON API: the list with each
workflow's phase history and cost, one workflow, and the page shell whose
script (no inline script, under the CSP) fills it."""

from __future__ import annotations

from tests.fakes.dashboard_env import make_app


def test_workflows_api_and_page(isolated_home):
    app, cfg, store = make_app(isolated_home)
    try:
        wf = store.create_workflow("/repo", "Fix the off-by-one", base="main", state={"plan": {"criteria": ["x"]}},
                                   budget_usd=1.5, first_task={"skill": "workflow", "payload": {}})
        store.advance_workflow(wf["id"], 0, finished="plan", outcome="planned", phase="approve",
                               usage={"input_tokens": 40, "output_tokens": 9, "cost_usd": 0.02, "model_calls": 1},
                               next_task={"skill": "workflow", "payload": {}})
        client = app.test_client()
        [row] = client.get("/api/workflows").get_json()["workflows"]
        assert (row["id"], row["status"], row["phase"], row["budget_usd"]) == (wf["id"], "RUNNING", "approve", 1.5)
        assert row["history"] == [{"step": 0, "phase": "plan", "outcome": "planned", "model_calls": 1,
                                   "input_tokens": 40, "output_tokens": 9, "cost_usd": 0.02,
                                   "finished_at": row["history"][0]["finished_at"]}]
        assert client.get("/api/workflows?status=DONE").get_json()["workflows"] == []
        assert client.get("/api/workflows?status=NOPE").status_code == 400
        one = client.get(f"/api/workflows/{wf['id']}").get_json()["workflow"]
        assert one["plan"] == {"criteria": ["x"]} and one["spent_usd"] == 0.02
        assert client.get("/api/workflows/999").status_code == 404
        page = client.get("/workflows", headers={"Accept": "text/html"})
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "/static/workflows.js" in html and 'id="workflows"' in html
        assert 'href="/workflows"' in html and "<script>" not in html  # no inline script
        assert client.get("/static/workflows.js").status_code == 200
    finally:
        store.close()
