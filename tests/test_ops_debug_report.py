"""`lead_client report-issue` and `resolutions` as real processes on a real
fleet home: the report holds every section the issue lists, and no secret
planted in the environment, the secrets file, the config, the logs, a failed
task or an alert reaches its JSON or markdown; the resolution lifecycle with
its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from fleet.config import load_config
from fleet.db import open_store
from tests.fakes.cli_runner import cli

ENV_SECRET = "envSecretValue-7f3a9c2e"             # ANTHROPIC_API_KEY in the environment
TOKEN_SECRET = "tokenSecretValue-91bd44"           # any *_TOKEN variable
PROVIDER_SECRET = "providerKeyUnderPlainName-55"   # a provider's api_key_env with a harmless-looking name
FILE_SECRET = "fileSecretValue-c0ffee11"           # in the secrets file only
URL_PASSWORD = "UrlPassw0rdSecret1"                # a password written into a server URL in fleet.toml
UNKNOWN_BEARER = "bearerNobodyKnows0123456789"     # in a log line, known to no list
UNKNOWN_PASSWORD = "hunter2hunter2"                # `password=...` in a log line
UNKNOWN_SK = "sk-ant-api03-unlistedKey0123456789"  # a provider-key-shaped string in a log line
SECRETS = [ENV_SECRET, TOKEN_SECRET, PROVIDER_SECRET, FILE_SECRET, URL_PASSWORD, UNKNOWN_BEARER,
           UNKNOWN_PASSWORD, UNKNOWN_SK]
ENV = {"ANTHROPIC_API_KEY": ENV_SECRET, "GITHUB_TOKEN": TOKEN_SECRET, "VLLM_AUTH": PROVIDER_SECRET}


def _home(home: Path) -> None:
    (home / "fleet.toml").write_text(f"""
[providers.vllm]
type = "openai_compatible"
base_url = "http://fleet:{URL_PASSWORD}@127.0.0.1:9/v1"
api_key_env = "VLLM_AUTH"

[dashboard]
enabled = false
""")
    r = cli(home, "secret", "set", "OPENAI_API_KEY", "-", input=FILE_SECRET + "\n")
    assert r.rc == 0, r
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "coder_1.log").write_text("".join(f"2026-01-01 line {i} routine work\n" for i in range(80)) + (
        f"2026-01-01 calling claude with key {ENV_SECRET}\n"
        f"2026-01-01 github {TOKEN_SECRET} vllm {PROVIDER_SECRET} file {FILE_SECRET}\n"
        f"2026-01-01 GET http://fleet:{URL_PASSWORD}@127.0.0.1:9/v1/models\n"
        f"2026-01-01 sent Authorization: Bearer {UNKNOWN_BEARER}\n"
        f"2026-01-01 login password={UNKNOWN_PASSWORD} ok\n"
        f"2026-01-01 pasted {UNKNOWN_SK} by mistake\n"
        "2026-01-01 usage input_tokens=1200 max_tokens: 1024\n"
        "2026-01-01 LAST LINE of coder_1\n"))
    (logs / "supervisor.log").write_text("2026-01-01 supervisor started\n")
    store = open_store(load_config(home))
    try:
        for i in range(3):
            store.enqueue("noop", {"i": i})
            task = store.claim("coder_1", ["noop"])
            store.fail(task.id, task.lease_token, f"provider refused key {ENV_SECRET} (attempt {i})",
                       retryable=False)
        store.raise_alert("warning", "coder_1", f"auth failed with {FILE_SECRET}")
    finally:
        store.close()


def _report(home: Path, *args: str) -> tuple[dict, str, str, dict]:
    r = cli(home, "report-issue", "--json", *args, env=ENV)
    assert r.rc == 0, r
    out = r.json()
    text = Path(out["json_path"]).read_text()
    md = Path(out["md_path"]).read_text()
    return out, text, md, json.loads(text)


def test_report_has_every_section_and_no_planted_secret(isolated_home):
    _home(isolated_home)
    out, text, md, rep = _report(isolated_home, "--description", f"workers hang; my key is {ENV_SECRET}",
                                 "--steps", "1. start 2. dispatch")
    assert Path(out["json_path"]).parent == isolated_home / "reports" / "debug"
    assert out["json_path"].endswith(".json") and out["md_path"] == out["json_path"][:-5] + ".md"
    assert out["status"] == "open"
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into the JSON report"
        assert secret not in md, f"{secret} leaked into the markdown report"
    # every section, with real content
    assert set(rep) >= {"versions", "config", "status", "alerts", "hw_state", "logs", "failed_tasks", "preflight"}
    assert rep["versions"]["fleet"] and rep["versions"]["python"] and rep["versions"]["store"].startswith("SQLite ")
    assert rep["versions"]["os"]
    assert rep["config"]["providers"]["vllm"]["base_url"] == "http://fleet:[redacted]@127.0.0.1:9/v1"
    assert rep["config"]["providers"]["vllm"]["api_key_env"] == "VLLM_AUTH"  # a name, not a secret
    assert rep["status"]["state"] == "no_supervisor" and rep["status"]["tasks"]["FAILED"] == 3
    assert [a["component"] for a in rep["alerts"]] == ["coder_1"]
    assert "[redacted]" in rep["alerts"][0]["message"]
    assert "schema_version" in rep["hw_state"]
    tail = rep["logs"]["coder_1.log"]
    assert len(tail) == 50 and tail[-1].endswith("LAST LINE of coder_1")
    assert any("Bearer [redacted]" in line for line in tail)
    assert any("password=[redacted]" in line for line in tail)
    assert "2026-01-01 usage input_tokens=1200 max_tokens: 1024" in tail  # counts are no secrets
    assert rep["logs"]["supervisor.log"] == ["2026-01-01 supervisor started"]
    assert len(rep["failed_tasks"]) == 3 and all("[redacted]" in t["error"] for t in rep["failed_tasks"])
    assert {c["name"] for c in rep["preflight"]["checks"]} >= {"config", "store", "disk"}
    assert rep["description"].startswith("workers hang") and rep["reproduction_steps"] == "1. start 2. dispatch"
    assert "## Logs (last lines)" in md and "LAST LINE of coder_1" in md and "# Fleet debug report" in md
    # the record of the report in the store (and the audit trail) holds no secret either
    listed = cli(isolated_home, "resolutions", "list", "--json")
    assert listed.rc == 0 and ENV_SECRET not in listed.out
    assert listed.json()["reports"][0]["id"] == out["id"]
    audit = cli(isolated_home, "audit", "--action", "debug_report", "--json")
    assert audit.rc == 0 and ENV_SECRET not in audit.out and len(audit.json()["items"]) == 1


def test_no_logs_leaves_the_logs_out_and_failed_tasks_are_the_last_20(isolated_home):
    _home(isolated_home)
    store = open_store(load_config(isolated_home))
    try:
        for i in range(22):
            store.enqueue("noop", {"more": i})
            task = store.claim("coder_1", ["noop"])
            store.fail(task.id, task.lease_token, f"later failure {i}", retryable=False)
        newest = [t.id for t in store.list_tasks(status="FAILED", limit=20).items]
    finally:
        store.close()
    _, text, _, rep = _report(isolated_home, "--no-logs")
    assert rep["logs"] == "left out (--no-logs)"
    assert "LAST LINE of coder_1" not in text
    assert [t["id"] for t in rep["failed_tasks"]] == newest and len(newest) == 20
    assert rep["failed_tasks"][0]["error"] == "later failure 21"


def test_resolution_lifecycle_and_exit_codes(isolated_home):
    (isolated_home / "fleet.toml").write_text("[dashboard]\nenabled = false\n")
    first = cli(isolated_home, "report-issue", "--json", "--no-logs", "--description", "one").json()
    second = cli(isolated_home, "report-issue", "--json", "--no-logs", "--description", "two").json()
    assert first["json_path"] != second["json_path"]  # two in one second get their own files
    r = cli(isolated_home, "resolutions", "resolve", str(first["id"]), "--note", "raised the lease",
            "--fix-commit", "abc123", "--json")
    assert r.rc == 0, r
    report = r.json()["report"]
    assert (report["status"], report["note"], report["fix_commit"], report["resolved_by"]) == \
        ("resolved", "raised the lease", "abc123", "operator")
    still_open = cli(isolated_home, "resolutions", "list", "--status", "open", "--json").json()["reports"]
    assert [x["id"] for x in still_open] == [second["id"]]
    again = cli(isolated_home, "resolutions", "resolve", str(first["id"]), "--note", "again")
    assert again.rc == 1 and "already resolved" in again.err
    missing = cli(isolated_home, "resolutions", "resolve", "999", "--note", "x")
    assert missing.rc == 1 and "does not exist" in missing.err
    no_note = cli(isolated_home, "resolutions", "resolve", str(second["id"]))
    assert no_note.rc == 2
    plain = cli(isolated_home, "resolutions")
    assert plain.rc == 0 and "raised the lease" in plain.out and "two" in plain.out
    bare = cli(isolated_home, "resolutions", "--json")  # no sub-command: the list
    assert bare.rc == 0 and [x["id"] for x in bare.json()["reports"]] == [second["id"], first["id"]]


def test_a_report_is_written_when_the_store_is_down(isolated_home):
    """A report is needed most when the store cannot be reached: it is still
    written (the sections that need the store say why), just not recorded."""
    (isolated_home / "fleet.toml").write_text(
        '[store]\nbackend = "postgresql"\ndsn = "postgresql://fleet@127.0.0.1:1/fleet"\n'
        "[dashboard]\nenabled = false\n")
    logs = isolated_home / "logs"
    logs.mkdir()
    (logs / "supervisor.log").write_text(f"2026-01-01 store down, key {ENV_SECRET}\n")
    r = cli(isolated_home, "report-issue", "--json", "--description", "store down", env=ENV, timeout=120)
    assert r.rc == 0, r
    assert "could not be opened" in r.err
    out = r.json()
    assert out["id"] is None and out["status"] == "unrecorded"
    text = Path(out["json_path"]).read_text()
    assert ENV_SECRET not in text and ENV_SECRET not in Path(out["md_path"]).read_text()
    rep = json.loads(text)
    assert rep["versions"]["python"] and rep["versions"]["store"].startswith("unknown: the store could not be opened")
    assert "could not be opened" in rep["status"]["error"] and "could not be opened" in rep["alerts"]["error"]
    assert rep["logs"]["supervisor.log"] == ["2026-01-01 store down, key [redacted]"]
    assert rep["config"]["store"]["backend"] == "postgresql"
    assert any(c["name"] == "store" and not c["ok"] for c in rep["preflight"]["checks"])
