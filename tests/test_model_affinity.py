"""What a worker tells the store it prefers to claim (fleet/model_affinity.py):
the models hw_state.json says are loaded plus those of its running tasks, the
skills whose configured model is among them (or that need none), and when the
preference is off."""

from __future__ import annotations

import time

from fleet.hw_state import hw_state_path, write_hw_state
from fleet.model_affinity import ModelAffinity
from tests.fakes.fleetproc import write_config
from tests.fakes.model_servers import dead_url


def _cfg(home, **workers):
    return write_config(home, affinity={"coder": ["modelchat", "noop"]}, workers=workers,
                        models={"chain": ["local"]}, hardware={"interval_s": 60.0},
                        providers={"local": {"type": "ollama", "base_url": dead_url(), "model": "m1"}})


def _write(cfg, names, *, age_s=0.0, reachable=True):
    at = time.time() - age_s
    write_hw_state(hw_state_path(cfg), {
        "schema_version": 1, "written_at": at, "interval_s": 60.0, "host": "t", "source": "cpu",
        "tier": {"name": "cpu", "model": "m1", "num_gpu": 0, "reason": "t", "changed_at": at},
        "models": {"server_reachable": reachable, "loaded": [{"name": n} for n in names], "conductor_loaded": None}})


def test_prefers_loaded_and_running_models_and_the_skills_on_them(isolated_home):
    cfg = _cfg(isolated_home)
    aff = ModelAffinity(cfg, ["modelchat", "noop"])
    assert aff.enabled
    assert aff.prefer() is None  # no hw_state.json yet and nothing running: the plain order
    # a running task's model counts; noop needs no model, modelchat's configured model (m1) is not loaded
    assert aff.prefer(["x:latest"]) == {"models": ["x"], "skills": ["noop"], "max_wait_s": 120.0}
    assert aff.prefer(["y" * 600]) is None  # a name the store would refuse is left out, never an error
    _write(cfg, ["m1:latest"])
    fresh = ModelAffinity(cfg, ["modelchat", "noop"])  # (hw_state.json is cached for a second)
    assert fresh.prefer() == {"models": ["m1"], "skills": ["modelchat", "noop"], "max_wait_s": 120.0}


def test_stale_or_unreachable_hw_state_names_no_loaded_model(isolated_home):
    cfg = _cfg(isolated_home)
    _write(cfg, ["m1"], age_s=3600)
    assert ModelAffinity(cfg, ["modelchat"]).loaded_models() == frozenset()
    _write(cfg, ["m1"], reachable=False)
    assert ModelAffinity(cfg, ["modelchat"]).loaded_models() == frozenset()


def test_the_preference_is_off_by_config_and_for_roles_without_model_skills(isolated_home):
    assert not ModelAffinity(_cfg(isolated_home, loaded_model_max_wait_s=0.0), ["modelchat"]).enabled
    cfg = _cfg(isolated_home)
    assert not ModelAffinity(cfg, ["noop"]).enabled
