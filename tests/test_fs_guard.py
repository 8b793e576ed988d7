"""The filesystem guard (fleet/fs_guard.py): zones, per-skill overrides,
enforce vs log-only, deny_by_default, and paths judged where they really lead
(symlinks out of a zone, `..`). The decision table is checked directly; the
rest through a real worker running the real code_quality skill, whose every
read and write goes through the skills' helpers."""

from __future__ import annotations

import json
import os

import pytest

from fleet.fs_guard import READ, WRITE, decide
from tests.fakes.fleetproc import fleet, stop, wait_until, write_config  # noqa: F401

ZONES = {"src": {"path": "src", "access": "read"}, "notes": {"path": "knowledge", "access": "read_write"}}


def _cfg(home, **enterprise):
    return write_config(home, filesystem={"zones": ZONES, "enterprise": enterprise,
                                          "overrides": {"deployer": {"zones": ["src"], "access": "full"}}})


def test_the_decision_table(isolated_home, tmp_path):
    cfg = _cfg(isolated_home, deny_by_default=True)
    (isolated_home / "src").mkdir()
    (isolated_home / "knowledge").mkdir()
    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\n")
    (isolated_home / "src" / "link.py").symlink_to(outside)
    src = isolated_home / "src"
    assert decide(cfg, src / "a.py", READ, "code_quality") == (True, "zone src")
    ok, why = decide(cfg, src / "a.py", WRITE, "code_quality")
    assert not ok and "read-only" in why
    assert decide(cfg, isolated_home / "knowledge" / "r.md", WRITE, "code_quality")[0]
    ok, why = decide(cfg, src / "link.py", READ, "code_quality")  # a link out of the zone
    assert not ok and str(outside) in why and "no declared zone" in why
    ok, why = decide(cfg, src / ".." / ".." / "elsewhere.py", READ, "code_quality")  # `..` out of it
    assert not ok and "no declared zone" in why
    # an override: this skill may use only its zones, and write there ("full")
    assert decide(cfg, src / "a.py", WRITE, "deployer")[0]
    ok, why = decide(cfg, isolated_home / "knowledge" / "r.md", WRITE, "deployer")
    assert not ok and "outside the zones skill deployer may use" in why
    # deny_by_default off: a path in no zone is allowed
    lenient = _cfg(isolated_home)
    assert decide(lenient, outside, READ, "code_quality")[0]
    # no zones at all: everything allowed, as before
    assert decide(write_config(isolated_home), outside, WRITE, "x") == (True, "no zones declared")


def test_an_override_naming_an_unknown_zone_is_a_config_error(isolated_home):
    from fleet.config import ConfigError

    with pytest.raises(ConfigError, match=r"\[filesystem.overrides.x\] zones names 'nope'"):
        write_config(isolated_home, filesystem={"zones": ZONES, "overrides": {"x": {"zones": ["nope"]}}})


def _tree(home, tmp_path):
    (home / "src").mkdir(exist_ok=True)
    (home / "src" / "ok.py").write_text('"""Fine."""\n\n\ndef f():\n    """Doc."""\n    return 1\n')
    secret = tmp_path / "elsewhere"
    secret.mkdir(exist_ok=True)
    (secret / "hidden.py").write_text("def leaked():\n    return 2\n")
    (home / "src" / "link.py").symlink_to(secret / "hidden.py")
    return secret


def _access_log(home) -> list[dict]:
    path = home / "logs" / "fs_access.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(fleet, skill: str, payload: dict):  # noqa: F811
    store = fleet.store
    task = store.enqueue(skill, payload)
    return wait_until(lambda: (t := store.get(task.id)).status in ("DONE", "FAILED") and t, 60, step=0.1,
                      what=f"{skill} to finish")


GUARDED = {"workers": {"coder_count": 1}, "affinity": {"coder": ["code_quality"]}}


def test_enforced_zones_allow_reads_refuse_a_link_out_and_writes_outside(fleet, tmp_path):  # noqa: F811
    secret = _tree(fleet.home, tmp_path)
    sup = fleet.start(**GUARDED, queue={"max_attempts": 1},
                      filesystem={"zones": ZONES, "enterprise": {"enforce": True, "deny_by_default": True}})
    done = _run(fleet, "code_quality", {"path": "src"})
    assert done.status == "DONE", done.error
    assert done.result["summary"]["files"] == 1  # ok.py read; the link out of the zone left out of the walk
    denied = [r for r in _access_log(fleet.home) if r["decision"] == "denied"]
    assert any(r["path"] == str(secret / "hidden.py") and r["skill"] == "code_quality"
               and r["task_id"] == done.id for r in denied), denied
    # reading a folder in no zone is refused: the task fails with the reason
    refused = _run(fleet, "code_quality", {"path": str(secret)})
    assert refused.status == "FAILED" and "filesystem guard refuses to read" in refused.error
    assert stop(sup) == 0


def test_a_read_only_zone_refuses_the_skills_report_write(fleet, tmp_path):  # noqa: F811
    _tree(fleet.home, tmp_path)
    zones = {"src": {"path": "src", "access": "read"}, "notes": {"path": "knowledge", "access": "read"}}
    sup = fleet.start(**GUARDED, queue={"max_attempts": 1},
                      filesystem={"zones": zones, "enterprise": {"enforce": True}})
    failed = _run(fleet, "code_quality", {"path": "src"})
    assert failed.status == "FAILED" and "refuses to write" in failed.error and "read-only" in failed.error
    assert not list((fleet.home / "knowledge").rglob("*.md"))
    assert stop(sup) == 0


def test_log_only_lets_a_violation_through_and_logs_it(fleet, tmp_path):  # noqa: F811
    secret = _tree(fleet.home, tmp_path)
    sup = fleet.start(**GUARDED, filesystem={"zones": ZONES, "enterprise": {"deny_by_default": True}})
    done = _run(fleet, "code_quality", {"path": "src"})
    assert done.status == "DONE" and done.result["summary"]["files"] == 2  # the link was read (enforce = false)
    logged = [r for r in _access_log(fleet.home) if r["path"] == str(secret / "hidden.py")]
    assert logged and logged[0]["decision"].startswith("violation (logged only")
    assert oct(os.stat(fleet.home / "logs" / "fs_access.log").st_mode & 0o777) == "0o600"
    assert stop(sup) == 0
