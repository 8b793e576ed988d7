"""The launcher against a real running fleet: Start runs the supervisor
detached (logs in the home), dispatch from the Tasks tab runs a real skill to
DONE, a human-in-the-loop request is answered from Fleet Comm, and Stop and
Start act through the supervisor as the CLI does. Screenshots of the running fleet."""

from __future__ import annotations

import pytest

from tests.fakes.fleetproc import pid_gone, write_config
from tests.launcher_harness import (  # noqa: F401 - display and free_windows_on_the_tk_thread are fixtures
    close_launcher,
    display,
    free_windows_on_the_tk_thread,
    open_launcher,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def ui(isolated_home, display, tmp_path_factory):  # noqa: F811 - the display fixture
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 affinity={"coder": ["noop", "sleepy", "fails", "ask"]}, queue={"max_attempts": 1},
                 supervisor={"services": ["hw_supervisor"]}, hardware={"interval_s": 0.5})
    driver = open_launcher(isolated_home, display, tmp_path_factory)
    try:
        yield driver
    finally:
        close_launcher(driver)


def coder(app) -> dict | None:
    doc = app.status_doc or {}
    return next((a for a in doc.get("agents", []) if a["name"] == "coder_1"), None)


def test_start_dispatch_answer_stop_and_start_again(ui, isolated_home):
    app = ui.app
    messages: list[str] = []
    shown = app.set_message
    app.set_message = lambda text: (messages.append(text), shown(text))
    ui.until(lambda: app.status_doc is not None and app.status_doc.get("state") == "no_supervisor",
             what="the stopped fleet")
    app.buttons["start"].invoke()
    ui.until(lambda: app.starter.started is not None, what="the supervisor to be started")
    pid = app.starter.started.pid
    ui.until(lambda: app.status_doc["state"] == "ok" and (coder(app) or {}).get("status") == "idle", timeout=60,
             what="the fleet to run")
    assert app.status_doc["supervisor"]["pid"] == pid
    assert (isolated_home / "logs" / "supervisor.console.log").exists()
    assert app.state_label.cget("text") == "RUNNING"

    fleet = ui.tab("fleet")
    ui.until(lambda: fleet.agents.tree.exists("coder_1"), what="coder_1 in the agents table")
    assert fleet.agents.tree.item("coder_1", "values")[3] == "idle"
    ui.until(lambda: fleet.services.tree.exists("hw_supervisor") and
             fleet.services.tree.item("hw_supervisor", "values")[1] == "running", timeout=30,
             what="hw_supervisor in the services table")
    ui.shot("running-fleet")
    hw = ui.tab("hardware")
    ui.until(lambda: hw.banner.cget("text").startswith("Live"), timeout=30, what="a live hw_state.json")
    assert "% of" in hw.cpu.text.cget("text") and "GiB" in hw.ram.text.cget("text")
    ui.shot("running-hardware")
    logs = ui.tab("logs")
    ui.until(lambda: logs.name.get() == "supervisor" and "supervisor.log" in logs.info.cget("text"),
             what="the supervisor's log")
    logs.filter.set("coder_1")
    logs.on_refresh()
    ui.until(lambda: "matching" in logs.info.cget("text") and "coder_1" in logs.view.get(), what="the filter")
    assert all("coder_1" in line.lower() for line in logs.view.get().splitlines())
    ui.shot("running-logs")
    ui.tab("fleet")
    before = coder(app)["pid"]
    fleet.agents.tree.selection_set("coder_1")
    fleet.act("restart")  # as `lead_client restart coder_1`
    ui.until(lambda: (coder(app) or {}).get("pid") not in (None, before) and coder(app)["status"] == "idle",
             timeout=30, what="a new coder_1")
    assert "took the request: restart coder_1" in " ".join(messages)
    fleet.act("pause")  # as `lead_client pause coder_1`: a message to the worker
    ui.until(lambda: "pause sent to coder_1" in " ".join(messages), what="the pause message")
    ui.until(lambda: (coder(app) or {}).get("status") == "paused", timeout=20, what="coder_1 to pause")
    fleet.act("resume")
    ui.until(lambda: (coder(app) or {}).get("status") == "idle", timeout=20, what="coder_1 to resume")

    tasks = ui.tab("tasks")
    ui.until(lambda: "noop" in tasks.skill_box.cget("values"), what="the skills")
    tasks.dispatch_skill.set("noop")
    tasks.build_form()
    assert set(tasks.fields) == {"n", "sleep_s"}
    tasks.fields["n"][1].set("7")
    tasks.dispatch_button.invoke()
    ui.until(lambda: tasks.last_dispatched is not None, what="the dispatch")
    tid = tasks.last_dispatched
    store = app.client.ctx.store
    ui.until(lambda: store.require(tid).status == "DONE", timeout=30, what="the noop task to finish")
    assert store.require(tid).result == {"n": 7, "ok": True}
    assert store.require(tid).created_by == "launcher"  # the audit trail says it came through the launcher
    tasks.on_refresh()
    ui.until(lambda: tasks.table.tree.exists(str(tid)) and
             tasks.table.tree.item(str(tid), "values")[2] == "DONE", what="DONE in the list")
    tasks.table.tree.selection_set(str(tid))
    ui.until(lambda: "attempts:" in tasks.detail.get() and "done" in tasks.detail.get(), what="the detail")
    ui.shot("running-tasks-done")

    tasks.dispatch_skill.set("ask")
    tasks.build_form()
    tasks.fields["topic"][1].set("ship it")
    tasks.dispatch_button.invoke()
    ui.until(lambda: tasks.last_dispatched not in (None, tid), what="the ask dispatch")
    ask = tasks.last_dispatched
    ui.until(lambda: store.require(ask).status == "WAITING_HUMAN", timeout=30, what="the question")
    comm = ui.tab("comm")
    ui.until(lambda: comm.shown_ids == [ask], what="the request in Fleet Comm")
    comm.toggle(ask)
    ui.until(lambda: ask in comm.texts, what="the request to expand")
    comm.texts[ask].insert("1.0", "looks good")
    ui.shot("running-comm-request")
    comm.respond(ask, "approve")
    ui.until(lambda: store.require(ask).status == "DONE", timeout=30, what="the answered task to finish")
    assert store.require(ask).result == {"answer": {"choice": "approve", "text": "looks good"}}
    ui.until(lambda: comm.shown_ids == [] and not comm.texts, what="the answered request to leave the list")

    app.buttons["stop"].invoke()  # as `lead_client stop`: every role stops, then the supervisor exits
    ui.until(lambda: app.status_doc["state"] == "no_supervisor" and app.starter.started is None, timeout=40,
             what="the fleet to stop", detail=lambda: (coder(app), app.status_doc.get("roles")))
    assert pid_gone(pid) and "took the request: stop all roles" in " ".join(messages)
    assert app.state_label.cget("text") == "STOPPED" and app.buttons["stop"].instate(["disabled"])
    ui.shot("stopped-after-stop")
    app.buttons["start"].invoke()
    ui.until(lambda: app.status_doc["state"] == "ok" and (coder(app) or {}).get("status") == "idle", timeout=60,
             what="the fleet to run again")
    second = app.status_doc["supervisor"]["pid"]
    assert second != pid and app.starter.started.pid == second
    close_launcher(ui)  # stops the supervisor this launcher started, and only that one
    assert pid_gone(second)
