"""Every outcome of lead_client is parseable and consistent (issue 17 H, J):
an unknown agent is a usage error (exit 2) for `logs` as for pause / restart /
start, and under --json every error prints {"error": ..., "exit": N} on stdout,
the exit status being N. Real subprocesses against a temp fleet home."""

from __future__ import annotations

import pytest

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import write_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(isolated_home):
    write_config(isolated_home, workers={"coder_count": 1}, dashboard={"enabled": False}, models={"chain": []})
    return isolated_home


@pytest.mark.parametrize("args", [["logs", "nosuch"], ["pause", "nosuch"], ["restart", "nosuch"],
                                  ["start", "nosuch"]])
def test_an_unknown_agent_exits_2_everywhere(home, args):
    r = cli(home, *args)
    assert r.rc == 2, r
    assert "usage:" in r.err and "nosuch" in r.err


def test_logs_of_a_known_agent_that_has_not_run_yet_is_no_usage_error(home):
    r = cli(home, "logs", "coder_1")
    assert r.rc == 1, r
    assert "has not run" in r.err


@pytest.mark.parametrize("args, code", [
    (["status", "--json", "--bogus"], 2),                       # argparse refuses the command line
    (["dispatch", "noop", "--json"], 2),                        # a missing argument
    (["logs", "nosuch", "--json"], 2),                          # unknown agent
    (["dispatch", "nosuch", "{}", "--json"], 2),                # unknown skill
    (["dispatch", "noop", "not json", "--json"], 2),            # bad payload
    (["result", "99", "--json"], 1),                            # no such task
    (["secret", "get", "NOPE", "--json"], 1),                   # unset secret
    (["start", "--json"], 69),                                  # no supervisor
    (["dispatch", "noop", "{}", "--wait", "--timeout", "2", "--json"], 69),
])
def test_every_error_under_json_prints_error_and_exit_on_stdout(home, args, code):
    r = cli(home, *args)
    assert r.rc == code, r
    doc = r.json()
    assert doc["exit"] == code and isinstance(doc["error"], str) and doc["error"], doc
    assert r.err.strip(), "the human-readable error stays on stderr"


def test_a_config_error_under_json_is_parseable(home):
    (home / "fleet.toml").write_text("[queue]\nmax_attempts = 'three'\n")
    r = cli(home, "tasks", "--json")
    assert r.rc == 78, r
    doc = r.json()
    assert doc["exit"] == 78 and "max_attempts" in doc["error"]


def test_a_failure_after_the_document_joins_it_as_one_json_document(home):
    from fleet.config import load_config
    from fleet.db import open_store

    s = open_store(load_config(home))
    s.register_agent("coder_1", "coder", pid=1, status="idle")  # a fresh heartbeat: the fleet looks alive
    s.close()
    r = cli(home, "dispatch", "noop", "{}", "--wait", "--timeout", "1", "--assigned-to", "nobody", "--json")
    assert r.rc == 99, r
    doc = r.json()
    assert doc["timed_out"] is True and doc["task"]["status"] == "PENDING"
    assert doc["exit"] == 99 and "still PENDING" in doc["error"]
