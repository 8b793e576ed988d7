"""The operations manual's mode table, mode by mode, on a real fleet (a
supervisor with a coder worker, the dashboard and the hardware supervisor):

| mode    | flag                 | behaviour                                                     |
| normal  | (default)            | every skill runs; the dashboard runs                          |
| eco     | eco_mode = true      | the model tier is pinned to CPU                               |
| offline | offline_mode = true  | network skills refused with the reason; local ones run        |
| air-gap | air_gap_mode = true  | offline + no dashboard + secrets not loaded + only the skills |
|         |                      | in [air_gap] allowed_skills run (refused at dispatch, and in  |
|         |                      | the worker for a task that got in another way)                |
"""

from __future__ import annotations

import json

import httpx
import pytest

from fleet.db import open_store
from tests.fakes.cli_runner import cli
from tests.fakes.dashboard_env import free_port
from tests.fakes.fleetproc import start_supervisor, stop, wait_until, write_config

MODES = {
    "normal": {},
    "eco": {"eco_mode": True},
    "offline": {"offline_mode": True},
    "air_gap": {"air_gap_mode": True},
}


def _finish(store, task_id: int):
    return wait_until(lambda: (t := store.get(task_id)).status in ("DONE", "FAILED") and t, 30, step=0.05,
                      what=f"task {task_id} to finish")


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_behaves_as_the_manual_says(isolated_home, mode):
    port = free_port()
    (isolated_home / "secrets").write_text("export MODE_TEST_KEY='s3cret-value'\n")
    (isolated_home / "secrets").chmod(0o600)
    cfg = write_config(isolated_home, workers={"coder_count": 1}, affinity={"coder": ["noop", "netskill"]},
                       fleet=MODES[mode], air_gap={"allowed_skills": ["noop"]}, paths={"secrets": "secrets"},
                       supervisor={"services": ["dashboard", "hw_supervisor"]},
                       dashboard={"port": port, "poll_s": 0.1}, hardware={"interval_s": 0.5})
    sup = start_supervisor(isolated_home)
    store = open_store(cfg)
    try:
        wait_until(lambda: (a := store.get_agent("coder_1")) and a["status"] == "idle", 60, step=0.1,
                   what="the worker")
        # every mode runs a local, allowed skill
        r = cli(isolated_home, "dispatch", "noop", "{}", "--json")
        assert r.rc == 0, r
        assert _finish(store, r.json()["task"]["id"]).status == "DONE"
        net = store.enqueue("netskill", {})  # straight into the store: the worker must judge it too
        net = _finish(store, net.id)
        dashboard_up = _answers(port)
        secret = cli(isolated_home, "secret", "get", "MODE_TEST_KEY")
        if mode in ("normal", "eco"):
            assert net.status == "DONE"
            assert wait_until(lambda: _answers(port), 30, step=0.2, what="the dashboard")
            assert "s3cret-value" in secret.out
        if mode == "eco":
            state = wait_until(lambda: _fresh_hw(isolated_home), 30, step=0.2, what="hw_state.json")
            assert state["tier"]["name"] == "cpu" and state["eco_mode"] is True
        if mode == "offline":
            assert net.status == "FAILED" and net.error_reason == "offline" and "offline mode" in net.error
            assert wait_until(lambda: _answers(port), 30, step=0.2, what="the dashboard")
            assert "s3cret-value" in secret.out
        if mode == "air_gap":
            assert net.status == "FAILED" and net.error_reason == "air_gap", (net.error_reason, net.error)
            assert "allowed_skills" in net.error and "netskill" in net.error
            refused = cli(isolated_home, "dispatch", "netskill", "{}")
            assert refused.rc == 2 and "air-gap mode" in refused.err and "nothing was queued" in refused.err
            assert not dashboard_up and store.get_agent("dashboard") is None
            assert "s3cret-value" not in secret.out + secret.err and secret.rc != 0
    finally:
        store.close()
        assert stop(sup) == 0


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/session", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _fresh_hw(home):
    try:
        return json.loads((home / "hw_state.json").read_text())
    except (OSError, ValueError):
        return None
