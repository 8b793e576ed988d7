"""Status that agrees with reality, against a real supervisor in a temp fleet
home (issue 17 A-C, M): managed services show as running after a restart, a
fleet-wide resume undoes message pauses and paused workers are degraded, a
dashboard port held by another process is named in the banner (never the URL)
and makes `status` exit 3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import REPO, env_for, start_supervisor, stop, wait_until, write_config

pytestmark = pytest.mark.timeout(240)


def _open_store(home):
    from fleet.config import load_config
    from fleet.db import open_store

    return open_store(load_config(home))


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, TypeError):
        return False
    return True


def test_services_show_running_with_their_pid_after_the_supervisor_restarts(isolated_home):
    """A: dashboard / hw_supervisor were 'stopped' with no pid in status,
    STATUS.md and the memory audit after a restart, while they ran."""
    write_config(isolated_home, workers={"coder_count": 1}, supervisor={"services": ["hw_supervisor"]},
                 dashboard={"enabled": False}, models={"chain": []})
    for run in range(2):  # the second run is the restart
        sup = start_supervisor(isolated_home)
        try:
            def service_up():
                doc = cli(isolated_home, "status", "--json").json()
                row = next((a for a in doc["agents"] if a["name"] == "hw_supervisor"), None)
                return doc["exit_code"] == 0 and row and row["status"] == "running" and _alive(row["pid"]) and row

            row = wait_until(service_up, timeout=60, step=0.3, what=f"hw_supervisor running (run {run + 1})")
            assert row["pid"] != sup.pid
            line = f"| hw_supervisor | hw_supervisor | running | {row['pid']} |"
            wait_until(lambda line=line: line in (isolated_home / "STATUS.md").read_text(), timeout=30, step=0.3,
                       what="STATUS.md")
            from fleet.skills.memory_optimizer import worker_memory

            store = _open_store(isolated_home)
            try:
                audit = {r["name"]: r for r in worker_memory(store)}
            finally:
                store.close()
            assert audit["hw_supervisor"]["status"] == "running" and audit["hw_supervisor"]["alive"] is True
        finally:
            assert stop(sup) == 0


def test_fleet_resume_undoes_a_broadcast_pause_and_paused_workers_are_degraded(isolated_home):
    """B: `broadcast '{"type":"pause"}'` then `resume` left every worker paused,
    while status said OK."""
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False},
                 models={"chain": []}, supervisor={"heartbeat_timeout_s": 30.0})
    sup = start_supervisor(isolated_home)
    try:
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=60, step=0.3, what="the fleet up")
        assert cli(isolated_home, "broadcast", '{"type":"pause"}').rc == 0

        def paused():
            doc = cli(isolated_home, "status", "--json").json()
            return doc if "coder_1" in doc["paused_workers"] else None

        doc = wait_until(paused, timeout=30, step=0.3, what="the worker paused")
        assert doc["exit_code"] == 3 and doc["state"] == "degraded"
        assert any("coder_1" in p for p in doc["problems"])
        r = cli(isolated_home, "status")
        assert r.rc == 3 and "paused" in r.out
        r = cli(isolated_home, "resume", "--json")
        assert r.rc == 0 and "coder_1" in r.json()["resumed_workers"]
        r = cli(isolated_home, "dispatch", "noop", "{}", "--wait", "--timeout", "60")
        assert r.rc == 0, r
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=30, step=0.3, what="status ok again")
    finally:
        stop(sup)


def test_a_taken_dashboard_port_is_named_in_the_banner_and_status_exits_3(isolated_home, tmp_path):
    """C and M: a second fleet's dashboard found its port taken, crash-looped,
    and the banner still advertised the URL (showing the other fleet)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    write_config(isolated_home, workers={"coder_count": 1}, models={"chain": []},
                 dashboard={"enabled": True, "port": port}, supervisor={"services": ["dashboard"]})
    out_path = tmp_path / "banner.txt"
    with open(out_path, "w") as out:
        sup = subprocess.Popen([sys.executable, str(REPO / "fleet" / "supervisor.py")], cwd=str(REPO),
                               env=env_for(isolated_home), stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: "press Ctrl-C" in out_path.read_text(), timeout=60, step=0.2, what="the banner")
        banner = out_path.read_text()
        assert f"http://127.0.0.1:{port}/" not in banner, banner
        assert f"port {port} on 127.0.0.1 is taken by PID {os.getpid()}" in banner, banner
        assert f"knowledge (what skills write) in {isolated_home / 'knowledge'}/" in banner, banner

        def degraded():
            r = cli(isolated_home, "status", "--json")
            return r if r.rc == 3 else None

        doc = wait_until(degraded, timeout=60, step=0.3, what="status to exit 3").json()
        dash = next(s for s in doc["services"] if s["name"] == "dashboard")
        assert dash["state"] == "down" and f"PID {os.getpid()}" in dash["detail"]
        time.sleep(2)  # parked, not crash-looping: it never started
        store = _open_store(isolated_home)
        try:
            assert not [e for e in store.recent_events(200, action="spawn") if e["agent"] == "dashboard"]
            assert any(a["dedup_key"] == "dashboard_port" for a in store.list_alerts())
        finally:
            store.close()
        wait_until(lambda: "port_taken (its port is held by another process" in
                   (isolated_home / "STATUS.md").read_text(), timeout=30, step=0.3, what="STATUS.md to say why")
        holder.close()  # the port is free again: the operator starts the dashboard, as the banner said
        r = cli(isolated_home, "start", "dashboard")
        assert r.rc == 0, r
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=60, step=0.3, what="the dashboard up")

        def answers():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=60, step=0.3, what="this fleet's dashboard to answer on the freed port")
    finally:
        stop(sup)
        holder.close()


def test_banner_names_knowledge_and_the_dashboard_token_file(isolated_home, tmp_path):
    """M: the banner named only the logs, not knowledge/ or dashboard.token."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_config(isolated_home, workers={"coder_count": 1}, models={"chain": []},
                 dashboard={"enabled": True, "port": port}, supervisor={"services": ["dashboard"]})
    out_path = tmp_path / "banner.txt"
    with open(out_path, "w") as out:
        sup = subprocess.Popen([sys.executable, str(REPO / "fleet" / "supervisor.py")], cwd=str(REPO),
                               env=env_for(isolated_home), stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: "press Ctrl-C" in out_path.read_text(), timeout=60, step=0.2, what="the banner")
        banner = out_path.read_text()
        assert f"dashboard at http://127.0.0.1:{port}/ (token in {isolated_home / 'dashboard.token'}" in banner, banner
        assert f"knowledge (what skills write) in {isolated_home / 'knowledge'}/" in banner, banner
    finally:
        stop(sup)


def test_wait_on_a_task_that_asks_a_person_says_so_once_and_how_to_answer(isolated_home, tmp_path):
    """K: `--wait` on a task waiting for a human waited silently."""
    import re

    from tests.fakes.cli_runner import CLI

    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 affinity={"coder": ["noop", "ask"]}, supervisor={"heartbeat_timeout_s": 30.0})
    sup = start_supervisor(isolated_home)
    err_path = tmp_path / "wait.err"
    try:
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=60, step=0.3, what="the fleet up")
        with open(err_path, "w") as err:
            waiter = subprocess.Popen([sys.executable, CLI, "dispatch", "ask", "{}", "--wait", "--timeout", "90",
                                       "--json"], cwd=str(REPO), env=env_for(isolated_home),
                                      stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            wait_until(lambda: "waiting for a person" in err_path.read_text(), timeout=60, step=0.2,
                       what="the wait to say the task waits for an answer")
            time.sleep(1.0)  # more polls while it still waits: the line is not repeated
            text = err_path.read_text()
            m = re.search(r"task (\d+) is waiting for a person's answer: proceed\? \(one of: yes, no\)", text)
            assert m, text
            assert f"lead_client.py hitl respond {m.group(1)} ANSWER" in text
            assert text.count("waiting for a person") == 1, text
            assert cli(isolated_home, "hitl", "respond", m.group(1), "yes").rc == 0
            out, _ = waiter.communicate(timeout=60)
        finally:
            if waiter.poll() is None:
                waiter.kill()
        assert waiter.returncode == 0, err_path.read_text()
        import json

        assert json.loads(out)["task"]["result"] == {"answer": "yes"}
    finally:
        stop(sup)


def test_tasks_for_a_worker_that_does_not_exist_start_no_extra_workers(isolated_home):
    """E: tasks assigned to a non-existent worker triggered autoscaling; the
    extras could not claim them and idled out. Unassigned load still scales."""
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []},
                 supervisor={"scale_up_depth": 3, "scale_up_after_s": 0.0, "scale_max_extra": 1,
                             "scale_idle_s": 30.0, "heartbeat_timeout_s": 30.0})
    sup = start_supervisor(isolated_home)
    store = _open_store(isolated_home)
    try:
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=60, step=0.3, what="the fleet up")
        r = cli(isolated_home, "dispatch", "noop", "{}", "--assigned-to", "ghost")
        assert r.rc == 0 and "no configured worker is named 'ghost'" in r.err  # warned at dispatch
        store.enqueue_many([{"skill": "noop", "payload": {}, "assigned_to": "ghost"} for _ in range(20)])
        time.sleep(6)  # three scaling passes (every 2 s) with the depth far above 3
        assert not [e for e in store.recent_events(500, action="spawn") if "extra" in (e["agent"] or "")]
        ids = [t.id for t in store.enqueue_many([{"skill": "sleepy", "payload": {"seconds": 0.5}}
                                                 for _ in range(20)])]
        wait_until(lambda: [e for e in store.recent_events(500, action="spawn") if e["agent"] == "coder_extra1"],
                   timeout=60, step=0.3, what="unassigned load to start an extra coder")
        wait_until(lambda: all(store.get(i).status == "DONE" for i in ids), timeout=120, step=0.5, what="load done")
    finally:
        store.close()
        stop(sup)


def test_no_model_server_is_degraded_only_while_queued_tasks_need_a_model_never_down(isolated_home):
    """D: with no model server (the README's default set-up), /api/health
    answered 503 "down" while `status` said OK. One rule in both places:
    degraded only while a queued task needs a model, never down."""
    import httpx

    from fleet.config import load_config
    from fleet.skills._models import NoProviderAvailable, call_model
    from tests.fakes.dashboard_env import free_port

    port, dead = free_port(), free_port()  # nothing listens on `dead`: the model server is absent
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": True, "port": port},
                 supervisor={"services": ["hw_supervisor", "dashboard"], "heartbeat_timeout_s": 30.0},
                 hardware={"interval_s": 0.5}, models={"chain": ["local"], "breaker_failures": 1},
                 providers={"local": {"type": "ollama", "base_url": f"http://127.0.0.1:{dead}"}})
    cfg = load_config(isolated_home)
    for _ in range(2):  # real calls through the routing layer fail and open the breaker
        with pytest.raises(NoProviderAvailable):
            call_model("hello", cfg, skill="synthesize")
    sup = start_supervisor(isolated_home)
    url = f"http://127.0.0.1:{port}/api/health"
    try:
        def settled():
            try:
                r = httpx.get(url, timeout=5)
            except httpx.HTTPError:
                return None
            body = r.json()
            ready = not body["components"]["hardware"]["stale"] and body["components"]["workers"]["status"] == "healthy"
            return (r, body) if ready else None

        r, body = wait_until(settled, timeout=90, step=0.5, what="the dashboard with fresh hardware state")
        models = body["components"]["models"]
        assert r.status_code == 200 and body["status"] == "healthy", body
        assert models["status"] == "healthy" and models["open_breakers"] == ["local"], models
        assert models["server_reachable"] is False  # hw_supervisor found no model server
        assert "not degraded by it" in models["problem"]
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=30, step=0.3, what="status OK")

        r = cli(isolated_home, "dispatch", "synthesize", '{"paths": ["a.md", "b.md"], "title": "t"}')
        assert r.rc == 0, r  # queued: no role claims it here, so it stays queued
        r = httpx.get(url, timeout=5)
        body = r.json()
        assert r.status_code == 503 and body["status"] == "degraded", body
        assert body["components"]["models"]["status"] == "degraded"
        assert body["components"]["models"]["queued_needing_model"] == 1
        st = cli(isolated_home, "status", "--json")
        assert st.rc == 3, st
        doc = st.json()
        assert doc["models"]["status"] == "degraded" and any(p.startswith("models:") for p in doc["problems"])
    finally:
        stop(sup)


def test_a_dashboard_that_finds_its_port_taken_exits_78_so_it_is_parked_not_crash_looped(isolated_home):
    """C: started while another process holds its port (a race past the
    supervisor's check, or by hand), the dashboard exits 78 (configuration):
    the supervisor parks such a child instead of backing off into a crash loop."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        write_config(isolated_home, dashboard={"enabled": True, "port": port})
        out = subprocess.run([sys.executable, str(REPO / "fleet" / "dashboard.py")], cwd=str(REPO),
                             env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    finally:
        holder.close()
    assert out.returncode == 78, out
    assert f"port {port} on 127.0.0.1 is already in use by PID {os.getpid()}" in out.stderr
