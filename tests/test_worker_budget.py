"""A blocked budget fails the task through a real worker: FAILED with the
budget reason, never a DONE result (anchor lesson 15)."""

from __future__ import annotations

import tomlkit

from fleet.config import load_config
from fleet.db import open_store
from tests.fakes.fleetproc import start_worker, stop, wait_until, write_config
from tests.fakes.model_servers import FakeOllama


def test_blocked_budget_fails_the_task_with_the_reason(isolated_home):
    with FakeOllama() as ollama:
        write_config(isolated_home, affinity={"coder": ["pricey"]})
        doc = tomlkit.parse((isolated_home / "fleet.toml").read_text())
        doc["models"] = {"chain": ["ollama"], "max_wait_s": 0.0}
        doc["providers"] = {"ollama": {"type": "ollama", "base_url": ollama.url}}
        doc["budgets"] = {"skills": {"pricey": {"max_calls": 1, "enforcement": "block"}}}
        (isolated_home / "fleet.toml").write_text(tomlkit.dumps(doc))
        store = open_store(load_config(isolated_home))
        worker = start_worker(isolated_home, "coder", "coder_1")
        try:
            first = store.enqueue("pricey", {"q": "one"})
            wait_until(lambda: store.get(first.id).status == "DONE", 60, what="first call within budget")
            second = store.enqueue("pricey", {"q": "two"})
            wait_until(lambda: store.get(second.id).status == "FAILED", 60, what="budget block")
        finally:
            stop(worker)
        task = store.get(second.id)
        assert task.error_reason == "budget"
        assert task.error.startswith("budget exceeded for skill pricey: 1 of 1 calls")
        assert task.result is None and task.attempts == 1
        assert len(ollama.requests) == 1  # the blocked call never reached the server
        store.close()
