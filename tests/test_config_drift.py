"""Config drift on a real fleet: each worker records the hash of the config
it loaded; after fleet.toml changes, status, STATUS.md and the dashboard API
mark the workers on the older one "stale config", and `restart --stale`
restarts just those. A fleet.toml that turns invalid while the fleet runs
leaves it running, raises an alert naming the bad key, keeps the last good
file, and `--check-config` shows the diff against it."""

from __future__ import annotations

import subprocess
import sys

import tomlkit

from fleet.config_drift import LAST_GOOD
from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import REPO, env_for, fleet, live_worker, stop, wait_until  # noqa: F401


def _edit(home, **changes) -> None:
    doc = tomlkit.parse((home / "fleet.toml").read_text())
    for section, values in changes.items():
        for k, v in values.items():
            doc[section][k] = v
    (home / "fleet.toml").write_text(tomlkit.dumps(doc))


def test_workers_on_an_older_config_are_stale_until_restarted(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 2})
    store = fleet.store
    first = {n: wait_until(lambda n=n: live_worker(store, n), 30, what=n) for n in ("coder_1", "coder_2")}
    doc = cli(fleet.home, "status", "--json").json()
    assert doc["stale_config"] == [] and len(doc["config_hash"]) == 12
    assert {a["config_hash"] for a in doc["agents"] if a["role"] == "coder"} == {doc["config_hash"]}
    _edit(fleet.home, queue={"lease_s": 7.0})
    edit = wait_until(lambda: store.events(action="config_edit"), 30, step=0.2, what="the edit in the audit")
    assert edit[0]["detail"]["from"] == doc["config_hash"]
    audit = cli(fleet.home, "audit", "--action", "config_edit", "--json").json()["items"]
    assert [a["action"] for a in audit] == ["config_edit"] and audit[0]["detail"]["to"] != doc["config_hash"]
    doc = cli(fleet.home, "status", "--json").json()
    assert doc["stale_config"] == ["coder_1", "coder_2"], doc["stale_config"]
    out = cli(fleet.home, "status").out
    assert "stale config: coder_1, coder_2" in out and "restart --stale" in out
    from fleet.config import load_config
    from fleet.dashboard import create_app

    api = create_app(load_config(fleet.home), store=store).test_client().get("/api/status").get_json()
    assert api["stale_config"] == ["coder_1", "coder_2"] and api["config_hash"] == doc["config_hash"]
    assert [a["stale_config"] for a in api["agents"] if a["name"] == "coder_1"] == [True]
    status_md = wait_until(lambda: "stale config" in (t := (fleet.home / "STATUS.md").read_text()) and t, 30,
                           step=0.2, what="STATUS.md to show the stale workers")
    assert "coder_1" in status_md.split("stale config**:")[1].splitlines()[0]
    # restart --stale restarts exactly the stale ones, and they come back on the new config
    r = cli(fleet.home, "restart", "--stale", "--json")
    assert r.rc == 0 and r.json()["restarted"] == ["coder_1", "coder_2"], r
    for n in ("coder_1", "coder_2"):
        wait_until(lambda n=n: live_worker(store, n, not_pid=first[n]["pid"]), 30, what=f"{n} restarted")
    doc = cli(fleet.home, "status", "--json").json()
    assert doc["stale_config"] == []
    again = cli(fleet.home, "restart", "--stale")
    assert again.rc == 0 and "no worker runs a stale config" in again.out
    assert stop(sup) == 0


def test_an_invalid_fleet_toml_keeps_the_fleet_running_on_the_last_good_one(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1})
    store = fleet.store
    wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    good = (fleet.home / "fleet.toml").read_text()
    wait_until(lambda: (fleet.home / LAST_GOOD).exists(), 10, what="the last good file kept")
    assert (fleet.home / LAST_GOOD).read_text() == good
    _edit(fleet.home, queue={"lease_s": -3})
    alert = wait_until(lambda: next((a for a in store.list_alerts() if a["dedup_key"] == "config_invalid"), None),
                       30, step=0.2, what="the config alert")
    assert "[queue] lease_s" in alert["message"] and LAST_GOOD in alert["message"]
    assert sup.poll() is None and live_worker(store, "coder_1")  # still running on the last good config
    assert (fleet.home / LAST_GOOD).read_text() == good
    check = subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--check-config"],
                           env=env_for(fleet.home), capture_output=True, text=True, timeout=60)
    assert check.returncode == 78 and "[queue] lease_s" in check.stderr
    assert "-lease_s = 5.0" in check.stderr and "+lease_s = -3" in check.stderr, check.stderr
    # fixed: the alert closes and the new file becomes the last good one
    _edit(fleet.home, queue={"lease_s": 6.0})
    wait_until(lambda: not any(a["dedup_key"] == "config_invalid" for a in store.list_alerts()), 30, step=0.2,
               what="the alert to close")
    assert "lease_s = 6.0" in (fleet.home / LAST_GOOD).read_text()
    ok = subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--check-config"],
                        env=env_for(fleet.home), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "is valid (config " in ok.stdout
    assert stop(sup) == 0
