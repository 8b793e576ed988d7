"""lead_client without a running supervisor: every command as a real
subprocess against a temp fleet home — success paths, --json shapes, bad
arguments (exit 2, nothing written), no-supervisor (69) and wait-timeout (99)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import write_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(isolated_home):
    # a generous heartbeat limit: a loaded test box must not make agents look stale
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False},
                 models={"chain": []}, supervisor={"heartbeat_timeout_s": 120.0})
    return isolated_home


def open_store(home):
    from fleet.config import load_config
    from fleet.db import open_store as _open

    return _open(load_config(home))


def count_tasks(home) -> int:
    s = open_store(home)
    try:
        return sum(s.counts().values())
    finally:
        s.close()


# -- front ------------------------------------------------------------------
def test_help_lists_every_command_and_the_lazy_map_matches(home):
    from fleet.cli import COMMANDS
    from fleet.lead_client import build_parser

    full = build_parser()
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    r = cli(home, "--help")
    assert r.rc == 0
    for name in COMMANDS:
        assert name in r.out


@pytest.mark.parametrize("args", [
    ["nonsense"], [], ["status", "--bogus"], ["dispatch"], ["dispatch", "noop", "{}", "--priority", "11"],
    ["result", "abc"], ["result", "0"], ["tasks", "--status", "WRONG"], ["drain", "--timeout", "-1"],
    ["hw", "--watch", "0"], ["logs"], ["secret"], ["send", "x", "y", "--channel", "nope"],
    ["usage", "--period", "year"], ["hitl", "respond", "1"],
    # found in review: a traceback, a hang, or exit 0 having stored a message for nobody
    ["inbox", "x", "--limit", "99999999999999999999"], ["report", "--days", "99999"],
    ["send", "", "hi"], ["send", "coder_1", " "], ["broadcast", ""],
])
def test_bad_arguments_exit_2_with_usage(home, args):
    r = cli(home, *args)
    assert r.rc == 2, r
    assert "usage:" in r.err


# -- status -------------------------------------------------------------------
def test_status_without_supervisor_exits_69_and_json_shape(home):
    r = cli(home, "status")
    assert r.rc == 69, r
    assert "NOT RUNNING" in r.out
    r = cli(home, "status", "--json")
    assert r.rc == 69
    doc = r.json()
    assert doc["state"] == "no_supervisor" and doc["exit_code"] == 69
    assert doc["supervisor"] == {"running": False, "pid": None}
    assert set(doc["tasks"]) >= {"PENDING", "RUNNING", "DONE", "FAILED", "WAITING_HUMAN", "CANCELLED", "total"}
    assert [r["role"] for r in doc["roles"]] == ["coder"]
    assert doc["roles"][0]["state"] == "missing" and doc["degraded_roles"] == ["coder"]
    for key in ("fleet", "home", "generated_at", "paused", "agents", "oldest_pending_age_s", "active_alerts"):
        assert key in doc


def test_status_reports_agents_heartbeat_and_current_task(home):
    s = open_store(home)
    s.register_agent("coder_1", "coder", pid=4242, status="idle")
    t = s.enqueue("noop", {"n": 1})
    s.claim("coder_1", ["noop"])
    s.close()
    doc = cli(home, "status", "--json").json()
    agent = next(a for a in doc["agents"] if a["name"] == "coder_1")
    assert agent["current_task"] == t.id and agent["pid"] == 4242 and agent["heartbeat_age_s"] < 60
    assert doc["tasks"]["RUNNING"] == 1 and doc["tasks"]["total"] == 1
    assert doc["roles"][0]["running"] == 1
    r = cli(home, "status")
    assert "coder_1" in r.out and str(t.id) in r.out


def test_status_shows_each_host_and_a_dead_hosts_agents_as_lost(home):
    """Several hosts share a store: status names each, and a host whose agents
    stopped heartbeating while they ran is lost, its agents shown as lost."""
    import socket
    import time as _time

    s = open_store(home)
    here = socket.gethostname()
    s.register_agent("coder_1", "coder", pid=4242, host=here, status="idle")
    s.register_agent("coder_1@b", "coder", pid=4343, host="host-b", status="busy")
    with s._write() as conn:  # host-b went dark 10 minutes ago (test set-up only)
        conn.execute("UPDATE agents SET last_heartbeat = ? WHERE name = 'coder_1@b'", (_time.time() - 600,))
    s.close()
    doc = cli(home, "status", "--json").json()
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts[here]["state"] == "up" and hosts[here]["this_host"] and hosts[here]["running"] == 1
    assert hosts["host-b"]["state"] == "lost" and hosts["host-b"]["running"] == 0
    assert hosts["host-b"]["last_seen_age_s"] >= 599
    out = cli(home, "status").out
    row = next(line for line in out.splitlines() if line.startswith("host-b"))
    assert row.split()[1:3] == ["LOST", "0/1"] and row.split()[-2:] == ["10m", "ago"], out
    assert "lost (was busy)" in out, out
    assert "host-b" in out.split("lost (was busy)")[1].splitlines()[0], out  # the host column


# -- dispatch / task / result / tasks / cancel / retry ---------------------------
def test_dispatch_unknown_skill_lists_known_and_writes_nothing(home):
    r = cli(home, "dispatch", "no_such_skill", '{"a": 1}')
    assert r.rc == 2
    assert "known skills" in r.err and "noop" in r.err
    assert count_tasks(home) == 0


@pytest.mark.parametrize("payload", ['{"seconds": "soon"}', "{}", "[1, 2]", "{not json", "[" * 100_000])
def test_dispatch_bad_payload_exit_2_writes_nothing(home, payload):
    r = cli(home, "dispatch", "sleepy", "-", input=payload)
    assert r.rc == 2, r
    assert "Traceback" not in r.err
    assert count_tasks(home) == 0


def test_arguments_that_are_not_utf8_are_refused_before_anything_runs(home):
    r = cli(home, "send", "coder_1", "caf\udce9")  # the bytes b"caf\xe9" from a Latin-1 terminal
    assert r.rc == 2 and "not valid UTF-8" in r.err and "Traceback" not in r.err, r
    r = cli(home, "secret", "set", "K", "\udcff")
    assert r.rc == 2 and "not valid UTF-8" in r.err, r


def test_a_home_that_does_not_exist_is_an_error_not_a_new_fleet(home, tmp_path):
    missing = tmp_path / "typo" / "fleet"
    r = cli(home, "--home", str(missing), "tasks")
    assert r.rc == 78 and "is not a folder" in r.err, r
    assert not missing.exists() and not missing.parent.exists()


def test_dispatch_defaults_b64_stdin_and_result(home):
    r = cli(home, "dispatch", "noop", '{"n": 7}', "--json")
    assert r.rc == 0, r
    task = r.json()["task"]
    assert task["priority"] == 9 and task["status"] == "PENDING" and task["payload"] == {"n": 7}
    b64 = base64.b64encode(b'{"n": 8}').decode()
    r = cli(home, "dispatch", "noop", b64, "--b64", "--priority", "3", "--assigned-to", "coder_1", "--json")
    t2 = r.json()["task"]
    assert t2["payload"] == {"n": 8} and t2["priority"] == 3 and t2["assigned_to"] == "coder_1"
    r = cli(home, "dispatch", "noop", "-", "--json", input='{"n": 9}')
    assert r.json()["task"]["payload"] == {"n": 9}
    r = cli(home, "dispatch", "noop", "!!!", "--b64")
    assert r.rc == 2 and "base64" in r.err
    r = cli(home, "result", str(task["id"]), "--json")
    assert r.rc == 0
    doc = r.json()
    assert doc["task"]["id"] == task["id"] and doc["attempts"] == [] and doc["depends_on"] == []
    r = cli(home, "result", "999")
    assert r.rc == 1 and "999" in r.err and r.err.count("\n") == 1
    r = cli(home, "tasks", "--json", "--limit", "2")
    page = r.json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["items"][0]["id"] > page["items"][1]["id"]
    assert cli(home, "tasks", "--status", "done", "--json").json()["total"] == 0
    assert "3 of 3" in cli(home, "tasks").out


def test_task_raw_json_bypasses_parser(home):
    r = cli(home, "task", '{"skill": "noop", "n": 3}', "--json")
    assert r.rc == 0, r
    assert r.json()["task"]["payload"] == {"n": 3} and r.json()["task"]["priority"] == 5
    r = cli(home, "task", '{"skill": "noop", "payload": {"n": 4}, "priority": 7}', "--json")
    assert r.json()["task"]["payload"] == {"n": 4} and r.json()["task"]["priority"] == 7
    r = cli(home, "task", '{"n": 4}')
    assert r.rc == 2 and "skill" in r.err
    r = cli(home, "task", '{"skill": "nope"}')
    assert r.rc == 2 and "known skills" in r.err
    assert count_tasks(home) == 2


def test_task_raw_json_keeps_task_fields_in_their_places(home):
    """Before, every key beside "skill" went into the payload and the priority
    was silently 5."""
    r = cli(home, "task", '{"skill": "noop", "payload": {"n": 1}, "priority": 8, "assigned_to": "coder_1", '
            '"max_attempts": 2}', "--json")
    assert r.rc == 0, r
    task = r.json()["task"]
    assert (task["payload"], task["priority"], task["assigned_to"], task["max_attempts"]) == ({"n": 1}, 8, "coder_1", 2)
    task = cli(home, "task", '{"skill": "noop", "n": 2, "priority": 9}', "--json").json()["task"]
    assert task["payload"] == {"n": 2} and task["priority"] == 9  # the flat form: task fields stay the task's
    task = cli(home, "task", '{"skill": "noop", "priority": 9}', "--priority", "9", "--json").json()["task"]
    assert task["priority"] == 9
    before = count_tasks(home)
    for text, needle in [
        ('{"skill": "noop", "payload": {"n": 1}, "n": 2}', "unknown top-level key(s) n"),
        ('{"skill": "noop", "payload": [1]}', '"payload" must be a JSON object'),
        ('{"skill": "noop", "priority": 11}', "priority must be an integer from 1 to 10"),
        ('{"skill": "plan_workload", "goal": "ship the release", "priority": 3}', "use the payload form"),
    ]:
        r = cli(home, "task", text)
        assert r.rc == 2 and needle in r.err, (text, r)
    r = cli(home, "task", '{"skill": "noop", "priority": 8}', "--priority", "3")
    assert r.rc == 2 and "two priorities" in r.err
    assert count_tasks(home) == before  # a refused task writes nothing


def test_cancel_and_retry(home):
    tid = cli(home, "dispatch", "noop", "{}", "--json").json()["task"]["id"]
    r = cli(home, "cancel", str(tid), "--json")
    assert r.rc == 0 and r.json()["task"]["status"] == "CANCELLED"
    r = cli(home, "cancel", str(tid))
    assert r.rc == 1 and "already CANCELLED" in r.err
    r = cli(home, "retry", str(tid), "--json")
    assert r.rc == 0 and r.json()["task"]["status"] == "PENDING"
    r = cli(home, "retry", str(tid))
    assert r.rc == 1 and "only DONE, FAILED or CANCELLED" in r.err


def test_hitl_list_and_respond(home):
    s = open_store(home)
    t = s.enqueue("ask", {})
    c = s.claim("coder_1", ["ask"])
    s.ask_human(c.id, c.lease_token, "proceed?", ["yes", "no"])
    s.close()
    r = cli(home, "hitl", "list", "--json")
    assert r.rc == 0
    items = r.json()["items"]
    assert items[0]["id"] == t.id and items[0]["question"] == "proceed?" and items[0]["options"] == ["yes", "no"]
    r = cli(home, "hitl", "respond", str(t.id), "maybe")
    assert r.rc == 2 and "yes, no" in r.err
    r = cli(home, "hitl", "respond", str(t.id), "yes", "--json")
    assert r.rc == 0 and r.json()["task"]["status"] == "PENDING"
    assert r.json()["task"]["payload"]["human_answer"] == "yes"
    assert "no task is waiting" in cli(home, "hitl", "list").out


# -- waiting -----------------------------------------------------------------
def test_wait_without_fleet_exits_69_and_queues_nothing(home):
    r = cli(home, "dispatch", "noop", "{}", "--wait", "--timeout", "2")
    assert r.rc == 69, r
    assert "supervisor" in r.err
    assert count_tasks(home) == 0


def test_wait_timeout_exits_99(home):
    s = open_store(home)
    s.register_agent("coder_1", "coder", pid=1, status="idle")  # a fresh heartbeat: the fleet looks alive
    s.close()
    t0 = time.monotonic()
    r = cli(home, "dispatch", "noop", "{}", "--wait", "--timeout", "1", "--assigned-to", "nobody", "--json")
    assert r.rc == 99, r
    assert r.json()["timed_out"] is True and r.json()["task"]["status"] == "PENDING"
    assert "still PENDING" in r.err
    assert time.monotonic() - t0 < 30


# -- fleet control without a supervisor ------------------------------------------
@pytest.mark.parametrize("args", [["start"], ["stop", "coder"], ["restart", "coder_1"]])
def test_supervisor_commands_exit_69_without_one(home, args):
    r = cli(home, *args)
    assert r.rc == 69, r
    assert "supervisor" in r.err and r.err.count("\n") == 1


def test_unknown_role_is_usage_error(home):
    assert cli(home, "start", "wizard").rc == 2
    assert cli(home, "restart", "wizard_9").rc == 2


def test_pause_resume_flag_and_worker_message(home):
    assert cli(home, "pause", "--json").json() == {"scope": "fleet", "paused": True}
    assert cli(home, "status", "--json").json()["paused"] is True
    assert cli(home, "resume").rc == 0
    assert cli(home, "status", "--json").json()["paused"] is False
    r = cli(home, "pause", "coder_1", "--json")
    assert r.rc == 0 and r.json()["request"] == "pause"
    s = open_store(home)
    msgs = s.inbox("coder_1", channel="agent")
    s.close()
    assert json.loads(msgs[-1]["body"]) == {"type": "pause"}
    assert cli(home, "pause", "ghost").rc == 2


def test_drain_waits_for_running_tasks(home):
    r = cli(home, "drain", "--timeout", "5", "--json")
    assert r.rc == 0 and r.json()["drained"] is True
    s = open_store(home)
    s.enqueue("noop", {})
    s.claim("coder_1", ["noop"])
    s.close()
    r = cli(home, "drain", "--timeout", "0.5", "--json")
    assert r.rc == 99, r
    assert r.json()["running"] == 1 and r.json()["drained"] is False


def test_detect_cli_and_hw(home):
    r = cli(home, "detect-cli", "--json")
    assert r.rc == 0
    doc = r.json()
    assert doc["platform"] and doc["python"] and "git" in doc["tools"] and "present" in doc["gpu"]
    assert "python" in cli(home, "detect-cli").out
    r = cli(home, "hw", "--json")
    assert r.rc == 0, r
    state = r.json()
    assert "stale" in state and "tier" in state
    assert "tier" in cli(home, "hw").out


def test_hw_watch_repeats_until_interrupted(home):
    import os
    import signal
    import subprocess
    import sys

    from tests.fakes.cli_runner import CLI, REPO
    from tests.fakes.fleetproc import stop

    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    # (a suite started as a background job inherits SIGINT ignored, as the shell
    # sets it for background commands: give the CLI the terminal's default)
    proc = subprocess.Popen([sys.executable, CLI, "hw", "--watch", "0.2", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first, second = json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())
        assert "tier" in first and "tier" in second
    finally:
        assert stop(proc, 10, signal.SIGINT) == 0


# -- messaging -----------------------------------------------------------------
def test_send_inbox_broadcast_notes(home):
    s = open_store(home)
    s.register_agent("coder_1", "coder", status="idle")
    s.register_agent("analyst", "analyst", status="idle")
    s.close()
    r = cli(home, "send", "coder_1", '{"type": "hello"}', "--json")
    assert r.rc == 0 and r.json()["registered"] is True
    cli(home, "send", "coder_1", "plain text", "--channel", "pool")
    r = cli(home, "inbox", "coder_1", "--json")
    bodies = [m["body"] for m in r.json()["messages"]]
    assert bodies == [{"type": "hello"}, "plain text"]
    # reading an agent's inbox does not take its messages
    assert len(cli(home, "inbox", "coder_1", "--json").json()["messages"]) == 2
    assert len(cli(home, "inbox", "coder_1", "--channel", "pool", "--json").json()["messages"]) == 1
    r = cli(home, "broadcast", "all hands", "--json")
    assert r.json()["recipients"] == 2
    r = cli(home, "notes", "research", "--post", '{"idea": 1}', "--json")
    assert r.rc == 0
    cli(home, "notes", "research", "--post", '"second"')
    r = cli(home, "notes", "research", "--json", "--since", "2000-01-01")
    assert [n["body"] for n in r.json()["notes"]] == [{"idea": 1}, "second"]
    assert cli(home, "notes", "research", "--since", "2999-01-01T00:00", "--json").json()["notes"] == []
    assert cli(home, "notes", "research", "--since", "yesterday").rc == 2
    assert cli(home, "notes", "research", "--post", "{bad").rc == 2


# -- logs and alerts ---------------------------------------------------------------
def test_logs_tail_and_alerts(home):
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "coder_1.log").write_text("".join(f"line {i}\n" for i in range(100)))
    r = cli(home, "logs", "coder_1", "--tail", "3")
    assert r.rc == 0 and r.out.splitlines() == ["line 97", "line 98", "line 99"]
    r = cli(home, "logs", "coder_1", "--json")
    assert len(r.json()["lines"]) == 30 and r.json()["lines"][-1] == "line 99"
    r = cli(home, "logs", "ghost")
    assert r.rc == 2 and "coder_1" in r.err  # an unknown agent is a usage error (issue 17 H)
    assert cli(home, "logs", "../etc/passwd").rc == 2
    s = open_store(home)
    aid = s.raise_alert("warning", "supervisor", "disk is filling up")
    s.close()
    r = cli(home, "alerts", "--json")
    assert [a["id"] for a in r.json()["alerts"]] == [aid]
    assert cli(home, "alerts", "--ack", str(aid), "--json").json()["alert"]["acked_by"] == "operator"
    assert cli(home, "alerts", "--json").json()["alerts"] == []
    assert len(cli(home, "alerts", "--all", "--json").json()["alerts"]) == 1
    assert cli(home, "alerts", "--ack", "999").rc == 1


def test_logs_follow_prints_appended_lines(home):
    import os
    import subprocess
    import sys

    from tests.fakes.cli_runner import CLI, REPO

    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    path = logs / "supervisor.log"
    path.write_text("old\n")
    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, CLI, "logs", "supervisor", "-f", "--tail", "1"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "old"
        with open(path, "a") as fh:
            fh.write("new line\n")
        assert proc.stdout.readline().strip() == "new line"
    finally:
        proc.terminate()
        proc.wait(10)


# -- cost ------------------------------------------------------------------------
def test_usage_delta_and_budget(home):
    write_config(home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 budgets={"global_usd": 1.0, "skills": {"summarize": {"limit_usd": 0.5}}})
    s = open_store(home)
    now = time.time()
    for skill, cost, ts in (("summarize", 0.25, now - 60), ("summarize", 0.25, now - 30),
                            ("rag_query", 0.1, now - 10), ("rag_query", 0.2, now - 40 * 86400)):
        s.record_model_call({"ts": ts, "skill": skill, "provider": "claude", "model": "claude-sonnet-4-5",
                             "input_tokens": 100, "output_tokens": 50, "cost_usd": cost, "success": True})
    s.close()
    r = cli(home, "usage", "--json")
    assert r.rc == 0
    rep = r.json()
    by = {row["key"]: row for row in rep["rows"]}
    assert by["summarize"]["calls"] == 2 and abs(by["summarize"]["cost_usd"] - 0.5) < 1e-9
    assert abs(rep["totals"]["cost_usd"] - 0.6) < 1e-9
    assert "summarize" in cli(home, "usage", "--period", "week").out
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    old = time.strftime("%Y-%m-%d", time.gmtime(now - 41 * 86400))
    old_end = time.strftime("%Y-%m-%d", time.gmtime(now - 38 * 86400))
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(now + 86400))
    r = cli(home, "usage-delta", old, old_end, day, tomorrow, "--json")
    assert r.rc == 0, r
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert rows["rag_query"]["cost_usd"]["direction"] == "down"
    assert rows["summarize"]["cost_usd"]["before"] == 0
    assert cli(home, "usage-delta", "x", "y", "z", "w").rc == 2
    assert cli(home, "usage-delta", day, old, day, tomorrow).rc == 2
    r = cli(home, "budget", "--json")
    budgets = {b["budget"]: b for b in r.json()["budgets"]}
    assert budgets["skill summarize"]["state"] == "exceeded"
    assert budgets["fleet"]["percent_used"] >= 60
    assert "exceeded" in cli(home, "budget").out


def test_task_natural_language_uses_the_intent_parser(home):
    import socket

    with socket.socket() as s:  # a port nobody listens on: the conductor model is unreachable
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_config(home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 providers={"ollama": {"type": "ollama", "base_url": f"http://127.0.0.1:{port}"}})
    r = cli(home, "task", "ask a person please", "--json")
    assert r.rc == 0, r
    doc = r.json()
    assert doc["task"]["skill"] == "ask" and doc["intent"]["method"] == "matcher"
    assert "model call" not in r.err  # the model layer's log line is not passed through
    r = cli(home, "task", "xyzzy frobnicate")
    assert r.rc == 1 and "could not tell which skill" in r.err
    assert count_tasks(home) == 1


def test_home_option_overrides_environment(home, tmp_path):
    other = tmp_path / "other_home"
    other.mkdir()
    tid = cli(home, "dispatch", "noop", "{}", "--json").json()["task"]["id"]
    r = cli(other, "--home", str(home), "result", str(tid), "--json")
    assert r.rc == 0 and r.json()["task"]["id"] == tid
    assert cli(other, "tasks", "--json").json()["total"] == 0


def test_module_entry_point(home):
    import os
    import subprocess
    import sys

    from tests.fakes.cli_runner import REPO

    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "fleet.lead_client", "tasks", "--json"], env=env, cwd=str(REPO),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and json.loads(r.stdout)["total"] == 0


def test_wait_shows_progress_on_a_terminal(home):
    import os
    import subprocess
    import sys

    from tests.fakes.cli_runner import CLI, REPO

    s = open_store(home)
    s.register_agent("coder_1", "coder", pid=1, status="idle")
    s.close()
    master, slave = os.openpty()
    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run([sys.executable, CLI, "dispatch", "noop", "{}", "--assigned-to", "nobody", "--wait",
                               "--timeout", "1"], env=env, stdout=subprocess.PIPE, stderr=slave, timeout=60,
                              check=False)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 99
    text = seen.decode(errors="replace")
    assert "PENDING" in text and "task 1:" in text and "s" in text.split("PENDING", 1)[1]


def test_dispatch_warns_when_no_configured_worker_would_claim_it(home):
    """The task is queued (a worker may be started next) but the operator is
    told why nothing will pick it up yet, and how to fix that."""
    r = cli(home, "dispatch", "noop", "{}", "--assigned-to", "nobody_here", "--json")
    assert r.rc == 0 and "no configured worker is named 'nobody_here'" in r.json()["warning"]
    r = cli(home, "dispatch", "code_review", '{"path": "x.py"}')
    assert r.rc == 0 and "warning: no running role claims skill 'code_review'" in r.err and "[affinity]" in r.err
    r = cli(home, "dispatch", "noop", "{}", "--json")
    assert r.rc == 0 and "warning" not in r.json()
