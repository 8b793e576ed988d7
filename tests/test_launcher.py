"""The desktop launcher's real Tk window under Xvfb on a real fleet home
(SQLite store, fleet stopped): start-up (and exit 69 without tkinter), every
tab builds, refreshes and is screenshotted, Settings saves a valid change and
refuses an invalid one, a broken module is disabled while the window goes on,
and a locked store shows "waiting" while the window keeps answering."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.fleetproc import REPO, write_config
from tests.launcher_harness import (  # noqa: F401 - display and free_windows_on_the_tk_thread are fixtures
    close_launcher,
    display,
    free_windows_on_the_tk_thread,
    open_launcher,
)

pytestmark = pytest.mark.timeout(120)

TAB_ORDER = ["fleet", "tasks", "comm", "hardware", "usage", "logs", "settings", "knowledge", "reviews", "modules"]


@pytest.fixture
def home(isolated_home):
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 queue={"busy_timeout_s": 2.0})
    return isolated_home


@pytest.fixture
def ui(home, display, tmp_path_factory):  # noqa: F811 - the display fixture
    driver = open_launcher(home, display, tmp_path_factory)
    try:
        yield driver
    finally:
        close_launcher(driver)


def test_without_tkinter_it_says_how_to_install_and_exits_69_and_78_on_a_bad_config(home):
    code = ("import sys; sys.modules['tkinter'] = None; sys.path.insert(0, sys.argv[1]); "
            "from launcher.launcher import main; raise SystemExit(main([]))")
    r = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 69, r
    assert "apt install python3-tk" in r.stderr and "brew install python-tk" in r.stderr
    r = subprocess.run([sys.executable, str(REPO / "launcher" / "launcher.py"), "--help"], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0 and "--home" in r.stdout, r
    (home / "fleet.toml").write_text("[queue]\nlease_s = -3\n")
    r = subprocess.run([sys.executable, str(REPO / "launcher" / "launcher.py"), "--home", str(home)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 78 and "[queue] lease_s: expected at least 1" in r.stderr, r


def test_window_opens_and_every_tab_builds_refreshes_and_is_screenshotted(ui, home):
    app = ui.app
    assert [s.name for s in app.slots] == TAB_ORDER
    ui.until(lambda: app.status_doc is not None, what="the first status")
    assert app.status_doc["state"] == "no_supervisor"
    assert app.state_label.cget("text") == "STOPPED" and "Start to run it" in app.state_detail.cget("text")
    assert app.buttons["stop"].instate(["disabled"]) and not app.buttons["start"].instate(["disabled"])
    assert (app.root.winfo_width(), app.root.winfo_height()) == (1280, 800)
    expect = {
        "fleet": lambda t: "fleet is stopped" in t.agents_note.cget("text"),
        "tasks": lambda t: t.page_label.cget("text") == "0–0 of 0" and "noop" in t.skill_box.cget("values"),
        "comm": lambda t: t.count.cget("text") == "none waiting",
        "hardware": lambda t: t.banner.cget("text").startswith("STALE"),
        "usage": lambda t: "0 calls" in t.totals.cget("text") and len(t.days) == 30,
        "logs": lambda t: "no logs yet" in t.info.cget("text"),
        "settings": lambda t: t.title.cget("text").startswith("[fleet]"),
        "knowledge": lambda t: "nothing yet" in t.where.cget("text"),
        "reviews": lambda t: "No review tasks yet" in t.summary.cget("text"),
        "modules": lambda t: len(t.local.tree.get_children()) == 2,
    }
    for name in TAB_ORDER:
        tab = ui.tab(name)
        ui.until(lambda tab=tab, name=name: expect[name](tab), what=f"the {name} tab to show its data")
        path = ui.shot(f"stopped-{name}")
        assert path.stat().st_size > 5000
    assert all(s.error is None for s in app.slots), [(s.name, s.error) for s in app.slots if s.error]
    app.close()
    assert app.closed


def test_settings_saves_a_valid_change_and_refuses_an_invalid_one(ui, home):
    toml = home / "fleet.toml"
    toml.write_text("# the operator's own comment\n" + toml.read_text())
    tab = ui.tab("settings")
    tab.sections.selection_clear(0, "end")
    tab.sections.selection_set(tab.section_names.index("queue"))
    tab.pick()
    spec, var, shown = tab.vars["lease_s"]
    assert shown == "5.0"
    var.set("45")
    tab.save_button.invoke()
    ui.until(lambda: tab.result.cget("text").startswith("saved"), what="the save")
    text = toml.read_text()
    assert "# the operator's own comment" in text and "lease_s = 45.0" in text
    assert "restarting the fleet" in tab.result.cget("text")
    assert ui.app.client.cfg["queue"]["lease_s"] == 45.0
    (edit,) = ui.app.client.ctx.store.audit_trail(action="config_edit")["items"]
    assert edit["via"] == "launcher" and edit["detail"]["keys"] == ["[queue] lease_s"]
    tab.vars["lease_s"][1].set("-3")
    tab.save_button.invoke()
    ui.until(lambda: tab.result.cget("text").startswith("not saved"), what="the refusal")
    assert "[queue] lease_s: expected at least 1" in tab.result.cget("text")
    assert toml.read_text() == text
    tab.vars["lease_s"][1].set("soon")
    tab.save_button.invoke()
    ui.until(lambda: "expected float" in tab.result.cget("text"), what="the type refusal")
    ui.shot("settings-refused")
    assert toml.read_text() == text


BROKEN = '''
from tkinter import ttk


class Module:
    NAME = "broken"
    LABEL = "Broken"
    VERSION = "0.1"
    DEFAULT_ENABLED = True
    DEPENDS_ON = []

    def __init__(self, app):
        self.app = app

    def build_tab(self, parent):
        ttk.Label(parent, text="about to fail").pack()

    def on_refresh(self):
        raise RuntimeError("module bug: refresh exploded")

    def on_close(self):
        pass

    def get_settings(self):
        return {}

    def apply_settings(self, cfg):
        pass

    def export_data(self):
        return []

    def validate_record(self, data):
        return True, "OK"
'''


def test_a_broken_module_is_disabled_and_the_window_goes_on(home, display, tmp_path_factory):  # noqa: F811
    mods = home / "launcher_modules"
    mods.mkdir()
    (mods / "mod_broken.py").write_text(BROKEN)
    clumsy = BROKEN.replace('"broken"', '"clumsy"').replace('"Broken"', '"Clumsy"').replace(
        'raise RuntimeError("module bug: refresh exploded")', 'pass').replace(
        'ttk.Label(parent, text="about to fail").pack()',
        'self.button = ttk.Button(parent, text="Go", command=lambda: 1 / 0)\n        self.button.pack()')
    (mods / "mod_clumsy.py").write_text(clumsy)
    (mods / "mod_tasks.py").write_text(BROKEN.replace('"broken"', '"tasks"'))
    (mods / "mod_unimportable.py").write_text("raise ImportError('needs a package that is not installed')\n")
    (mods / "mod_needy.py").write_text(BROKEN.replace('"broken"', '"needy"').replace("DEPENDS_ON = []",
                                                                                      'DEPENDS_ON = ["absent"]'))
    ui = open_launcher(home, display, tmp_path_factory)
    try:
        app = ui.app
        names = [s.name for s in app.slots]
        assert "broken" in names and "unimportable" not in names and "needy" not in names
        assert "cannot be loaded: ImportError" in app.left_out["unimportable"]
        assert app.left_out["needy"] == "needs absent, which is not shown"
        assert names.count("tasks") == 1 and next(s for s in app.slots if s.name == "tasks").builtin
        ui.tab("broken")
        slot = next(s for s in app.slots if s.name == "broken")
        ui.until(lambda: slot.error is not None, what="the module to be disabled")
        assert "refresh exploded" in slot.error
        assert app.notebook.tab(slot.frame, "text") == "Broken (disabled)"
        ui.until(lambda: any("launcher module broken disabled" in a["message"]
                             for a in app.client.ctx.store.list_alerts()), what="the alert")
        ui.shot("module-disabled")
        clumsy_slot = next(s for s in app.slots if s.name == "clumsy")
        ui.tab("clumsy")
        ui.pump(0.3)
        assert clumsy_slot.error is None
        clumsy_slot.obj.button.invoke()  # a Tk callback of the module's own widget raises
        ui.until(lambda: clumsy_slot.error is not None, what="the clumsy module to be disabled")
        assert "ZeroDivisionError" in clumsy_slot.error
        tab = ui.tab("modules")
        ui.until(lambda: "disabled after an error" in " ".join(
            str(tab.local.tree.item(i, "values")) for i in tab.local.tree.get_children()), what="the modules list")
        assert tab.local.tree.item("tasks", "values")[4].startswith("left out: its NAME is a built-in tab's")
        ui.shot("modules-with-broken")
        ui.tab("tasks")  # the rest still works
        ui.until(lambda: app.slot_of(app.slots[1].obj).error is None and
                 "noop" in app.slots[1].obj.skill_box.cget("values"), what="the tasks tab")
        assert app.root.winfo_exists()
    finally:
        close_launcher(ui)


def test_a_locked_store_shows_waiting_and_the_window_keeps_answering(ui, home):
    tab = ui.tab("tasks")
    ui.until(lambda: "noop" in tab.skill_box.cget("values"), what="the skills")
    ui.idle_bg()
    tab.dispatch_skill.set("noop")
    tab.build_form()
    locker = sqlite3.connect(str(home / "fleet.db"), timeout=0)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the database lock
        tab.dispatch_button.invoke()
        longest = 0.0
        saw_waiting = False
        end = time.monotonic() + 1.6
        while time.monotonic() < end:
            t0 = time.monotonic()
            ui.root.update()
            longest = max(longest, time.monotonic() - t0)
            saw_waiting = saw_waiting or ui.app.status_bar.cget("text").startswith("waiting: tasks:dispatch")
            time.sleep(0.01)
        assert saw_waiting, ui.app.status_bar.cget("text")
        assert longest < 0.5, f"the Tk thread stalled {longest:.3f} s"
        ui.shot("store-locked-waiting")
    finally:
        locker.rollback()
        locker.close()
    ui.until(lambda: tab.dispatch_result.cget("text") != "", timeout=10, what="the dispatch outcome")
    text = tab.dispatch_result.cget("text")
    assert text.startswith("task ") or "locked" in text, text


def test_pause_resume_drain_and_open_dashboard_act_as_the_cli(ui, home, tmp_path, monkeypatch):
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))
    import webbrowser

    monkeypatch.setattr(webbrowser, "_tryorder", None)  # re-read $BROWSER
    app = ui.app
    ui.until(lambda: app.status_doc is not None, what="the first status")
    store = app.client.ctx.store
    app.buttons["pause"].invoke()
    ui.until(lambda: store.get_flag("paused") is True and app.status_doc.get("paused"), what="the pause")
    ui.until(lambda: "(paused)" in app.state_label.cget("text"), what="the sidebar to say paused")
    app.buttons["resume"].invoke()
    ui.until(lambda: store.get_flag("paused") is False and not app.status_doc.get("paused"), what="the resume")
    app.buttons["drain"].invoke()
    ui.until(lambda: "drained in" in app.message, what="the drain")
    assert store.get_flag("paused") is True  # drain leaves the fleet paused, as `lead_client drain`
    app.buttons["dashboard"].invoke()
    ui.until(lambda: opened.exists(), what="the browser to be asked")
    assert opened.read_text().strip() == "http://127.0.0.1:5555/"
    # the audit trail says these came through the launcher
    flags = [e for e in store.audit_trail(action="flag", limit=10)["items"]]
    assert flags and all(e["via"] == "launcher" for e in flags), flags
    # Report issue: the same function as `lead_client report-issue`, recorded as the launcher's
    app.report_issue("the fleet looked stuck")
    ui.until(lambda: "debug report written" in app.message, what="the debug report")
    (report,) = store.debug_reports(limit=5)
    assert report["created_by"] == "launcher" and report["description"] == "the fleet looked stuck"
    assert (Path(home) / report["path"]).exists()


def test_tasks_tab_filters_pages_cancels_retries_and_takes_an_instruction(ui, home):
    app = ui.app
    tab = ui.tab("tasks")
    ui.until(lambda: "noop" in tab.skill_box.cget("values"), what="the skills")
    ui.idle_bg()
    store = app.client.ctx.store
    store.enqueue_many([{"skill": "noop", "payload": {"n": i}} for i in range(55)]
                       + [{"skill": "sleepy", "payload": {"note": "needle"}}])
    tab.apply_filter()
    ui.until(lambda: tab.page_label.cget("text") == "1–50 of 56", what="the first page")
    tab.page(1)
    ui.until(lambda: tab.page_label.cget("text") == "51–56 of 56", what="the second page")
    tab.text_var.set("needle")
    tab.apply_filter()
    ui.until(lambda: tab.page_label.cget("text") == "1–1 of 1", what="the text filter")
    (needle,) = tab.table.tree.get_children()
    tab.text_var.set("")
    tab.status_var.set("PENDING")
    tab.skill_var.set("noop")
    tab.apply_filter()
    ui.until(lambda: tab.page_label.cget("text") == "1–50 of 55", what="the status and skill filter")
    tab.status_var.set("all")
    tab.skill_var.set("all")
    tab.apply_filter()
    ui.until(lambda: tab.table.tree.exists(needle), what="the full list")
    tab.table.tree.selection_set(needle)
    tab.single("cancel")
    ui.until(lambda: store.require(int(needle)).status == "CANCELLED", what="the cancel")
    tab.single("retry")
    ui.until(lambda: store.require(int(needle)).status == "PENDING", what="the retry")
    ui.until(lambda: "retry" in tab.detail.get() or "cancel" in tab.detail.get(), what="the events in the detail")
    tab.instruction.set('{"skill": "noop", "n": 3, "priority": 8}')
    tab.instruct()
    ui.until(lambda: tab.dispatch_result.cget("text").startswith("task "), what="the instruction")
    t = store.require(tab.last_dispatched)
    assert (t.skill, t.payload, t.priority) == ("noop", {"n": 3}, 8)
    tab.instruction.set("summarize the file README.md")  # natural language: the intent parser (offline matcher)
    tab.instruct()
    ui.until(lambda: tab.last_dispatched != t.id, what="the parsed instruction")
    parsed = store.require(tab.last_dispatched)
    assert (parsed.skill, parsed.payload) == ("summarize", {"path": "README.md"})
    assert "read by the matcher" in tab.dispatch_result.cget("text")
    tab.dispatch_skill.set("noop")
    tab.build_form()
    tab.fields["n"][1].set("many")
    tab.dispatch()
    assert tab.dispatch_result.cget("text") == "n: 'many' is not a valid integer"
    tab.fields["n"][1].set("")
    tab.fields["sleep_s"][1].set("-1")
    tab.dispatch()
    ui.until(lambda: tab.dispatch_result.cget("text").startswith("not queued"), what="the schema refusal")
    assert "sleep_s" in tab.dispatch_result.cget("text")
    ui.shot("tasks-filtered")


def test_manual_chat_goes_through_call_model_and_shows_the_routing_message(isolated_home, display,  # noqa: F811
                                                                            tmp_path_factory):
    from tests.fakes.model_servers import FakeOllama, dead_url, provider_toml, write_model_config

    with FakeOllama(models=["qwen3:8b"]) as ollama:
        write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", ollama.url)],
                           extra="[dashboard]\nenabled = false\n")
        ollama.reply("hello, operator", usage={"input": 5, "output": 2})
        ui = open_launcher(isolated_home, display, tmp_path_factory)
        try:
            comm = ui.tab("comm")
            comm.prompt.set("are you there?")
            comm.send()
            ui.until(lambda: "hello, operator" in comm.transcript.get(), what="the model's reply")
            assert "you: are you there?\nollama/qwen3:8b: hello, operator" in comm.transcript.get()
            assert ollama.requests_to("/api/chat")[0].body["messages"][-1]["content"] == "are you there?"
            usage = ui.app.client.ctx.store.usage_rows(skill="launcher_chat")
            assert len(usage) == 1 and usage[0]["provider"] == "ollama"  # recorded like any model call
            ui.shot("comm-chat")
        finally:
            close_launcher(ui)
    write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", dead_url())],
                       extra="[dashboard]\nenabled = false\n")
    ui = open_launcher(isolated_home, display, tmp_path_factory)
    try:
        comm = ui.tab("comm")
        comm.prompt.set("anyone?")
        comm.send()
        ui.until(lambda: "routing: " in comm.transcript.get(), timeout=30, what="the routing message")
        text = comm.transcript.get()
        assert "ollama" in text.split("routing: ", 1)[1]
        ui.shot("comm-chat-no-model")
    finally:
        close_launcher(ui)


def test_fleet_comm_answers_need_text_and_discuss_opens_a_discussion_task(ui, home):
    store = ui.app.client.ctx.store
    ids = []
    for topic in ("a", "b"):
        store.enqueue("ask", {"topic": topic})
        t = store.claim("coder_1", ["ask"])
        store.ask_human(t.id, t.lease_token, f"proceed with {topic}?", ["yes", "no"])
        ids.append(t.id)
    comm = ui.tab("comm")
    ui.until(lambda: sorted(comm.shown_ids) == ids, what="both requests")
    comm.toggle(ids[0])
    ui.until(lambda: ids[0] in comm.texts, what="the first request to expand")
    comm.respond(ids[0], "more_info")
    ui.until(lambda: "needs text" in ui.app.message, what="the refusal of an empty 'more info'")
    assert store.require(ids[0]).status == "WAITING_HUMAN"
    comm.texts[ids[0]].insert("1.0", "is the cache warm?")
    comm.respond(ids[0], "discuss")
    ui.until(lambda: store.require(ids[0]).status == "PENDING", what="the discuss answer")
    answer = store.require(ids[0]).payload["human_answer"]
    assert answer["choice"] == "feedback" and "opened discussion task" in answer["text"]
    (discussion,) = store.list_tasks(skill="code_discuss").items
    assert discussion.payload == {"thread": f"task-{ids[0]}", "message": "is the cache warm?", "author": "launcher"}
    ui.until(lambda: comm.shown_ids == [ids[1]], what="the list to drop the answered request")
    comm.toggle(ids[1])
    ui.until(lambda: ids[1] in comm.texts, what="the second request to expand")
    comm.answer_option(ids[1], "no")
    ui.until(lambda: store.require(ids[1]).status == "PENDING", what="the option answer")
    assert store.require(ids[1]).payload["human_answer"] == "no"


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$0 $*" >> "$FAKE_LOG"
case "$1" in --version) echo "systemd 252 (252.1)"; exit 0;; esac
exit 0
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the systemd path")
def test_start_uses_the_installed_service_when_there_is_one(home, tmp_path, monkeypatch):
    from fleet.config import load_config
    from launcher.fleet_start import FleetStarter
    from tests.fakes.cli_runner import cli

    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name in ("systemctl", "loginctl"):
        (bin_dir / name).write_text(FAKE_SYSTEMCTL)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    cfg = load_config(home)
    starter = FleetStarter()
    assert cli(home, "install-service", "--json").rc == 0  # the operator's own install
    log.write_text("")
    res = starter.start(cfg)
    assert res["how"] == "service" and starter.started is None
    assert log.read_text().strip().endswith("--user start fleet.service")
    assert cli(home, "uninstall-service").rc == 0
    log.write_text("")
    res = starter.start(cfg)  # no service any more: the supervisor, detached
    try:
        assert res["how"] == "detached" and starter.started.pid == res["pid"]
        assert " start " not in log.read_text()
    finally:
        starter.started.terminate()
        starter.started.wait(30)


def test_profile_and_launcher_tabs_choose_the_tabs_and_depends_on_is_honoured(isolated_home, display,  # noqa: F811
                                                                              tmp_path_factory):
    write_config(isolated_home, dashboard={"enabled": False}, models={"chain": []},
                 launcher={"profile": "minimal", "tabs": {"hardware": True, "logs": False}})
    ui = open_launcher(isolated_home, display, tmp_path_factory)
    try:
        assert [s.name for s in ui.app.slots] == ["fleet", "tasks", "comm", "hardware", "settings"]
    finally:
        close_launcher(ui)
    write_config(isolated_home, dashboard={"enabled": False}, models={"chain": []},
                 launcher={"profile": "research", "tabs": {"tasks": False}})
    ui = open_launcher(isolated_home, display, tmp_path_factory)
    try:
        assert [s.name for s in ui.app.slots] == ["fleet", "comm", "hardware", "usage", "logs", "settings",
                                                  "knowledge"]
        assert ui.app.left_out["reviews"] == "needs tasks, which is not shown"
    finally:
        close_launcher(ui)


def test_knowledge_module_previews_files_and_keeps_bookmarks_in_the_store(ui, home):
    kdir = home / "knowledge" / "summaries"
    kdir.mkdir(parents=True)
    (kdir / "paper.md").write_text("# A summary\nthree findings\n")
    tab = ui.tab("knowledge")
    ui.until(lambda: tab.files.tree.exists("summaries/paper.md"), what="the knowledge file")
    tab.files.tree.selection_set("summaries/paper.md")
    ui.until(lambda: "three findings" in tab.view.get(), what="the preview")
    tab.note.set("read later")
    tab.bookmark()
    ui.until(lambda: tab.bookmarks == [{"path": "summaries/paper.md", "note": "read later"}], what="the bookmark")
    notes = ui.app.client.ctx.store.notes("module:knowledge")
    assert len(notes) == 1 and notes[0]["author"] == "launcher"  # module data lives in the store
    assert tab.export_data() == [{"path": "summaries/paper.md", "note": "read later"}]
    assert tab.validate_record({"note": "no path"}) == (False, "path is required")
    ui.shot("knowledge-bookmarked")
    modules = ui.tab("modules")
    assert "code_review" in modules.local.tree.item("reviews", "values")[5]  # its get_settings()
    modules.local.tree.selection_set("knowledge")
    modules.export()
    ui.until(lambda: modules.export_note.cget("text").startswith("exported to"), what="the export")
    (exported,) = (home / "exports").glob("knowledge-*.json")
    assert json.loads(exported.read_text()) == [{"path": "summaries/paper.md", "note": "read later"}]


def test_background_runs_the_newest_waiting_request_and_never_repeats_an_action():
    import threading

    from launcher.background import Background

    bg = Background(threads=2)
    gate = threading.Event()
    ran, done = [], []
    try:
        assert bg.submit("list", lambda: (gate.wait(10), ran.append("first"))[1], done.append)
        assert not bg.submit("list", lambda: ran.append("stale filter"), done.append)
        assert not bg.submit("list", lambda: ran.append("newest filter"), done.append)
        assert not bg.submit("list", lambda: ran.append("action twice"), done.append, wait=False)
        assert bg.busy("list") and bg.oldest_wait()[0] == "list"
        gate.set()
        end = time.monotonic() + 10
        while (len(ran) < 2 or bg.busy("list")) and time.monotonic() < end:
            bg.pump()
            time.sleep(0.01)
        assert ran == ["first", "newest filter"] and bg.oldest_wait() is None
        errors = []
        bg.submit("boom", lambda: 1 / 0, done.append, errors.append)
        while not errors and time.monotonic() < end:
            bg.pump()
            time.sleep(0.01)
        assert isinstance(errors[0], ZeroDivisionError)
    finally:
        bg.close()


def test_usage_hardware_and_alerts_show_what_the_fleet_recorded(home, display, tmp_path_factory):  # noqa: F811
    from fleet.config import load_config
    from fleet.db import open_store
    from fleet.hw_state import SCHEMA_VERSION

    write_config(home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 budgets={"global_usd": 1.0})
    cfg = load_config(home)
    store = open_store(cfg)
    now = time.time()
    for day in range(12):
        store.record_model_call({"ts": now - day * 86400 * 2, "skill": "summarize", "provider": "claude",
                                 "model": "claude-sonnet-4-6", "input_tokens": 1000 + 300 * day,
                                 "output_tokens": 200, "cost_usd": 0.01 * (day + 1), "success": 1})
    alert_id = store.raise_alert("critical", "hw_supervisor", "GPU 0 at 86 C over its 80 C limit")
    store.close()
    (home / "hw_state.json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "written_at": now, "interval_s": 5.0, "host": "bench-host", "source": "nvml",
        "cpu": {"percent": 42.0, "count": 16}, "memory": {"total_mb": 65536, "used_mb": 30000, "percent": 45.8},
        "disk": {"total_mb": 1e6, "free_mb": 4e5, "percent": 60.0},
        "gpus": [{"index": 0, "name": "NVIDIA H200", "vram_total_mb": 143771, "vram_used_mb": 120000,
                  "temp_c": 86.0},
                 {"index": 1, "name": "NVIDIA H200", "vram_total_mb": 143771, "vram_used_mb": 2000, "temp_c": 41.0}],
        "tier": {"name": "large", "model": "qwen3:32b", "reason": "GPU 0 at 86 C: stepped down", "changed_at": now},
        "thermal": {"state": "hot", "limit_c": 80.0, "gpu_max_sustained_c": 80.0},
        "models": {"server_reachable": True, "loaded": [{"name": "qwen3:32b", "vram_mb": 21000,
                                                         "expires_at": "2026-12-04T18:00:00Z"}]}}))
    ui = open_launcher(home, display, tmp_path_factory)
    try:
        usage = ui.tab("usage")
        ui.until(lambda: "12 calls" in usage.totals.cget("text"), what="the usage totals")
        ui.until(lambda: usage.budgets.tree.get_children(), what="the budget row")
        values = usage.budgets.tree.item(usage.budgets.tree.get_children()[0], "values")
        assert values[0] == "fleet" and values[7] in ("ok", "warning", "exceeded")
        assert sum(1 for d in usage.days if d["calls"]) == 12 and usage.days[-1]["cost_usd"] == 0.01
        ui.shot("usage-chart")
        hw = ui.tab("hardware")
        ui.until(lambda: hw.banner.cget("text").startswith("Live"), what="the live state")
        ui.until(lambda: len(hw.gpu_bars) == 2, what="two GPUs")
        assert hw.gpu_bars[0][0].cget("text") == "GPU 0: NVIDIA H200"
        assert hw.gpu_bars[0][2].text.cget("text") == "86 °C (limit 80 °C)"
        assert hw.tier.cget("text") == "large — model qwen3:32b"
        assert hw.models.tree.exists("0")
        ui.shot("hardware-gpus")
        fleet = ui.tab("fleet")
        ui.until(lambda: fleet.alerts.tree.exists(str(alert_id)), what="the alert")
        fleet.alerts.tree.selection_set(str(alert_id))
        fleet.ack()
        ui.until(lambda: not fleet.alerts.tree.exists(str(alert_id)), what="the acknowledged alert to go")
        (acked,) = ui.app.client.ctx.store.list_alerts(active_only=False)
        assert acked["acked_by"] == "launcher"
    finally:
        close_launcher(ui)


def test_the_launcher_works_the_same_on_a_postgresql_store(isolated_home, tmp_path, display,  # noqa: F811
                                                           tmp_path_factory):
    from tests.conftest import require_system_part
    from tests.store_backends import PostgreSQLBackend

    backend = PostgreSQLBackend(tmp_path / "pg")
    missing = backend.missing()
    if missing is not None:
        require_system_part(False, *missing)
    spec = backend.new_spec()
    write_config(isolated_home, dashboard={"enabled": False}, models={"chain": []},
                 store={"backend": "postgresql", "dsn": spec["dsn"], "schema": spec["schema"]})
    ui = open_launcher(isolated_home, display, tmp_path_factory)
    try:
        app = ui.app
        ui.until(lambda: app.status_doc is not None and app.status_doc.get("state") == "no_supervisor",
                 what="the status from PostgreSQL")
        tab = ui.tab("tasks")
        ui.until(lambda: "noop" in tab.skill_box.cget("values"), what="the skills")
        tab.dispatch_skill.set("noop")
        tab.build_form()
        tab.fields["n"][1].set("4")
        tab.dispatch()
        ui.until(lambda: tab.last_dispatched is not None, what="the dispatch")
        ui.until(lambda: tab.table.tree.exists(str(tab.last_dispatched)), what="the task in the list")
        (kdir := isolated_home / "knowledge").mkdir()
        (kdir / "note.md").write_text("x")
        know = ui.tab("knowledge")
        ui.until(lambda: know.files.tree.exists("note.md"), what="the knowledge file")
        know.files.tree.selection_set("note.md")
        know.bookmark()
        ui.until(lambda: len(know.bookmarks) == 1, what="the bookmark in PostgreSQL")
        store = app.client.ctx.store
        assert type(store).__name__ == "PostgresStore" and not (isolated_home / "fleet.db").exists()
        assert store.require(tab.last_dispatched).payload == {"n": 4}
        assert len(store.notes("module:knowledge")) == 1
    finally:
        close_launcher(ui)
        backend.cleanup()
