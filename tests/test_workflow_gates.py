"""The workflow's gates and learned rules without a fleet: a gate runs in a
clean environment (no secrets), without network where the system allows a
network namespace, and within its timeout; ruff and bandit look only at the
changed files; a rule is kept only when it tells the failing diff from the
accepted one."""

from __future__ import annotations

import socket
import subprocess

import pytest

from fleet.workflow import gates, rules


@pytest.fixture
def worktree(tmp_path):
    wt = tmp_path / "wt"
    wt.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    return wt


def test_a_gate_sees_no_secrets_and_stops_at_its_timeout(worktree, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("FLEET_STORE_DSN", "postgresql://secret@db/fleet")
    leak = gates.run_gate("env", ["python", "-c", "import os, sys; sys.exit(sorted(k for k in os.environ if "
                                                  "'KEY' in k or 'DSN' in k) != [])"], str(worktree), 30)
    assert leak["ok"], leak
    slow = gates.run_gate("slow", ["python", "-c", "import time; time.sleep(5)"], str(worktree), 0.5)
    assert not slow["ok"] and slow["output"].startswith("timed out after 0.5 s")


def test_a_gate_has_no_network_where_namespaces_are_allowed(worktree):
    if not gates._netns_prefix():
        pytest.skip("this system does not let an unprivileged user make a network namespace")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
        direct = subprocess.run(["python", "-c", probe], capture_output=True)
        assert direct.returncode == 0  # the port answers outside the gate
        gated = gates.run_gate("net", ["python", "-c", probe], str(worktree), 30)
    assert not gated["ok"] and "Error" in gated["output"], gated


def test_ruff_and_bandit_judge_only_the_changed_python_files(worktree):
    (worktree / "old.py").write_text("import os\n")  # unused import, not changed: not judged
    (worktree / "new.py").write_text("import subprocess\nsubprocess.call(input(), shell=True)\nx = undefined_name\n")
    results = {r["name"]: r for r in gates.run_gates(str(worktree), ["new.py", "notes.md"], test_command="",
                                                     timeout_s=60)}
    assert set(results) == {"ruff", "bandit"}
    assert not results["ruff"]["ok"] and "F821" in results["ruff"]["output"] and "old.py" not in \
        results["ruff"]["output"]
    assert not results["bandit"]["ok"] and "B602" in results["bandit"]["output"]
    assert gates.run_gates(str(worktree), ["notes.md"], test_command="", timeout_s=60) == []


def test_a_rule_is_kept_only_when_it_tells_the_failing_diff_from_the_accepted_one(isolated_home):
    cfg = {"home": str(isolated_home)}
    failing = "--- a/p.py\n+++ b/p.py\n@@ -1 +1 @@\n-x = 1\n+x = eval(data)\n"
    accepted = "--- a/p.py\n+++ b/p.py\n@@ -1 +1 @@\n-x = 1\n+x = int(data)\n"
    proposed = [{"name": "no eval", "pattern": r"\beval\(", "message": "do not eval input"},
                {"name": "too broad", "pattern": r"x = ", "message": "x"},
                {"name": "never fires", "pattern": r"exec\(", "message": "x"},
                {"name": "broken", "pattern": "(", "message": "x"}]
    other_failure = "--- a/q.py\n+++ b/q.py\n@@ -1 +1 @@\n-y = 1\n+y = 2\n"  # rejected for another reason
    verdicts = rules.vet_and_keep(cfg, "/repo", proposed, failing=[other_failure, failing], accepted=accepted,
                                  workflow_id=1)
    assert [(v["name"], v["kept"]) for v in verdicts] == [("no eval", True), ("too broad", False),
                                                         ("never fires", False), ("broken", False)]
    kept = rules.load(cfg, "/repo")
    assert [r["pattern"] for r in kept] == [r"\beval\("]
    caught = rules.gate(kept, failing)
    assert not caught["ok"] and "do not eval input" in caught["output"]
    assert rules.gate(kept, accepted)["ok"] and rules.gate([], failing) is None
    assert rules.delete(cfg, "/repo", kept[0]["id"]) and rules.load(cfg, "/repo") == []
