"""The morning briefing: a real fleet runs the scheduled `briefing` skill with
no model reachable; the file under knowledge/briefings/ reports tasks by
skill with the top error, cost against budgets, alerts, approvals, uptime and
hosts, and the digest reaches the notify targets (loopback Discord and
webhook). With a model (a loopback Ollama) it adds a marked summary."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import fleet, wait_until, write_config  # noqa: F401 (fleet: a fixture)
from tests.fakes.model_servers import FakeOllama, dead_url
from tests.fakes.net_servers import NetServer

LOG = logging.getLogger("test.briefing")


def _secret(home, key, value):
    from fleet.config import load_config
    from fleet.secret_file import set_secret

    set_secret(load_config(home), key, value)


def test_scheduled_briefing_reports_the_day_and_reaches_the_targets(fleet):  # noqa: F811
    with NetServer() as srv:
        srv.route("POST", "/discord", b"", status=204)
        srv.route("POST", "/hook", {})
        write_config(fleet.home)
        _secret(fleet.home, "DISCORD_URL", srv.url + "/discord")
        _secret(fleet.home, "HOOK_URL", srv.url + "/hook")
        fleet.start(
            workers={"coder_count": 1, "archivist": 1},
            affinity={"coder": ["noop", "fails", "ask"], "archivist": ["briefing"]},
            models={"chain": ["ollama"]}, providers={"ollama": {"type": "ollama", "base_url": dead_url()}},
            budgets={"global_usd": 5.0},
            notify={"discord": {"kind": "discord", "url_secret": "DISCORD_URL", "min_severity": "critical"},
                    "hook": {"kind": "webhook", "url_secret": "HOOK_URL", "min_severity": "critical"}},
            schedule={"morning_briefing": {"skill": "briefing", "cron": "0 7 * * *", "timezone": "Europe/Berlin",
                                           "catch_up": "none"}})
        store = fleet.store
        done = [store.enqueue("noop", {"n": i}).id for i in range(2)]
        failed = store.enqueue("fails", {}, max_attempts=1).id
        asking = store.enqueue("ask", {"topic": "deploy"}).id
        store.raise_alert("warning", "test", "disk 91 % full", dedup_key="disk")
        wait_until(lambda: all(store.get(i).status == "DONE" for i in done)
                   and store.get(failed).status == "FAILED" and store.get(asking).status == "WAITING_HUMAN",
                   timeout=60, what="the day's tasks")
        r = cli(fleet.home, "schedule", "run", "morning_briefing", "--json")
        assert r.rc == 0, r
        task_id = r.json()["task"]["id"]
        task = wait_until(lambda: (t := store.get(task_id)) and t.status in ("DONE", "FAILED") and t, timeout=90,
                          what="the briefing")
        assert task.status == "DONE", task.error
        discord = wait_until(lambda: [x for x in list(srv.requests) if x.path == "/discord"], what="the digest")
        hook = [x for x in list(srv.requests) if x.path == "/hook"]
    result = task.result
    assert result["done"] == 2 and result["failed"] == 1 and result["waiting_human"] == 1
    assert result["summary"] is False and result["sent"] == {"discord": "sent", "hook": "sent"}
    path = Path(fleet.home) / "knowledge" / "briefings" / os.path.basename(result["path"])
    text = path.read_text()
    print("\n----- the briefing -----\n" + text + "----- end -----")
    for heading in ("## Tasks", "## Cost and budgets", "## Alerts", "## Waiting for a person",
                    "## Uptime and capacity", "## Hosts seen"):
        assert heading in text
    assert "| noop | 2 | 0 |" in text and "| fails | 0 | 1 |" in text
    assert "1. fails (1x):" in text and "always fails" in text
    assert "| fleet | month | $0.0000 | $5.00 |" in text
    assert "disk 91 % full" in text and f"task {asking} (ask): proceed?" in text
    assert "Summary" not in text  # no model reachable: no summary
    content = discord[0].json()["content"]
    assert content.startswith("**Fleet fleet: morning briefing**\n")
    assert "Tasks: 2 done, 1 failed" in content and "Waiting for a person: 1." in content
    assert hook[0].json()["event"] == "briefing" and hook[0].json()["alert"] is None


def test_briefing_adds_a_marked_model_summary_when_a_model_answers(isolated_home):
    from fleet.skills import briefing

    with FakeOllama(models=["qwen3:8b"]) as ollama:
        ollama.reply("The fleet ran quietly. Nothing failed. Nothing needs doing first.")
        cfg = write_config(isolated_home, models={"chain": ["ollama"]},
                           providers={"ollama": {"type": "ollama", "base_url": ollama.url, "model": "qwen3:8b"}})
        out = briefing.run({"send": False}, cfg, LOG)
    text = (Path(cfg["paths"]["knowledge"]) / "briefings" / os.path.basename(out["path"])).read_text()
    assert out["summary"] is True and out["sent"] == {}
    assert "## Summary (written by a model)" in text
    assert "> The fleet ran quietly. Nothing failed. Nothing needs doing first." in text
    assert "Model-written by ollama/qwen3:8b" in text
    assert text.index("## Summary") < text.index("## Tasks")
