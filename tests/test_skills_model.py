"""Model skills against a loopback Ollama-protocol server with scripted replies: the
prompt carries what it must, output is parsed and written where the manual says,
malformed output is a clear failure with nothing (half-)written, and a skill with no
reachable model fails with the routing layer's message (or falls back where a real
non-model method exists)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.skills import code_review
from fleet.skills._common import ModelOutputError, SkillError, today
from fleet.skills._hitl import NeedsHuman
from fleet.skills._llm import ModelUnavailable
from tests.fakes.model_servers import FakeOllama, dead_url

LOG = logging.getLogger("test.skills.model")
REPO = Path(__file__).resolve().parent.parent
SAMPLE = '''"""Sample module."""

import sqlite3


def find_user(conn, name):
    return conn.execute("SELECT * FROM users WHERE name = '%s'" % name).fetchone()


def ratio(a, b):
    return a / b
'''


def model_config(home: Path, url: str, extra: str = "") -> dict:
    (home / "fleet.toml").write_text(
        f'[models]\nchain = ["ollama"]\n[providers.ollama]\ntype = "ollama"\nbase_url = "{url}"\n'
        f'model = "qwen3:8b"\ntimeout_s = 10.0\n{extra}')
    return load_config(home)


def prompt_of(server) -> str:
    body = server.requests_to("/api/chat")[-1].body
    return "\n".join(m["content"] for m in body["messages"])


def knowledge_files(cfg: dict, sub: str) -> list[Path]:
    root = Path(cfg["paths"]["knowledge"]) / sub
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def ollama():
    with FakeOllama() as server:
        yield server


@pytest.fixture
def sample(isolated_home) -> Path:
    p = isolated_home / "src" / "users.py"
    p.parent.mkdir()
    p.write_text(SAMPLE)
    return p


def review_reply(*findings) -> str:
    return json.dumps({"summary": "Builds SQL by string formatting; division unguarded.", "findings": list(findings)})


HIGH = {"severity": "high", "category": "errors", "line": 11, "title": "Division by zero",
        "detail": "ratio() raises ZeroDivisionError when b is 0.", "suggestion": "Check b first."}
CRITICAL = {"severity": "critical", "category": "security", "line": 7, "title": "SQL injection",
            "detail": "name is formatted into the SQL.", "suggestion": "Use a ? parameter."}


def test_code_review_prompt_has_file_and_checklist_and_files_report(isolated_home, ollama, sample):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply("```json\n" + review_reply(HIGH, dict(HIGH, severity="low", line=999, title="Naming")) + "\n```")
    out = code_review.run({"path": "src/users.py", "agent": "coder_1"}, cfg, LOG)
    prompt = prompt_of(ollama)
    assert "    7 | " + SAMPLE.splitlines()[6] in prompt  # the file, line-numbered
    for item in ("correctness", "errors", "security", "performance", "clarity"):
        assert f"- {item}:" in prompt
    assert out["filed"] and out["outcome"] == "changes_requested" and out["counts"]["high"] == 1
    assert [f["severity"] for f in out["findings"]] == ["high", "low"]
    assert out["findings"][1]["line_unverified"] is True
    report = Path(out["report"])
    assert report == Path(cfg["paths"]["knowledge"]) / "code_reviews" / f"src_users.py_review_{today()}_coder_1.md"
    text = report.read_text()
    assert "[HIGH] Division by zero" in text and "line 11" in text and "qwen3:8b" in text


@pytest.mark.parametrize("reply", [
    "Looks good to me!",                                              # prose, no JSON
    '{"summary": "ok", "findings": [{"severity": "catastrophic", "category": "security", "title": "x", "detail": "y"}]}',
    '{"summary": "ok"}',                                               # no findings field
    '{"summary": "ok", "findings": [{"severity": "low", "category": "style", "title": "x", "detail": "y"}]}',
])
def test_code_review_fails_closed_on_malformed_output(isolated_home, ollama, sample, reply):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(reply)
    with pytest.raises(ModelOutputError, match="nothing was written|nothing was filed"):
        code_review.run({"path": str(sample), "checklist": ["security", "errors"]}, cfg, LOG)
    assert knowledge_files(cfg, "code_reviews") == []


def test_code_review_critical_asks_a_person_then_files_or_discards(isolated_home, ollama, sample):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(review_reply(CRITICAL, HIGH))
    payload = {"path": str(sample), "agent": "coder_2"}
    with pytest.raises(NeedsHuman) as asked:
        code_review.run(dict(payload), cfg, LOG)
    assert "SQL injection" in asked.value.question and asked.value.options == ["file", "discard"]
    assert [p for p in knowledge_files(cfg, "code_reviews")] == []
    calls = ollama.request_count
    out = code_review.run(dict(payload, human_answer="file", human_question=asked.value.question), cfg, LOG)
    assert ollama.request_count == calls  # the stashed review is filed, not a new one
    assert out["filed"] and "SQL injection" in Path(out["report"]).read_text()
    # a second review of the same file, declined
    ollama.reply(review_reply(CRITICAL))
    with pytest.raises(NeedsHuman):
        code_review.run(dict(payload, focus="again"), cfg, LOG)
    out2 = code_review.run(dict(payload, focus="again", human_answer="discard"), cfg, LOG)
    assert out2["filed"] is False and out2["report"] is None
    assert len(knowledge_files(cfg, "code_reviews")) == 1


def test_code_review_of_a_git_diff(isolated_home, ollama, tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    (repo / "a.py").write_text("x = 1\ny = eval(input())\n")
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(review_reply(dict(HIGH, category="security", line=2, title="eval of input")))
    out = code_review.run({"diff": {"repo": str(repo), "base": "HEAD"}}, cfg, LOG)
    assert "+y = eval(input())" in prompt_of(ollama)
    assert out["kind"] == "diff" and Path(out["report"]).name.startswith("diff_HEAD_review_")
    with pytest.raises(SkillError, match="not a git ref|no changes"):
        code_review.run({"diff": {"repo": str(repo), "base": "--output=/tmp/x"}}, cfg, LOG)


def test_model_skill_without_a_model_fails_with_routing_message(isolated_home, sample):
    cfg = model_config(isolated_home, dead_url())
    with pytest.raises(ModelUnavailable, match="no model provider reachable"):
        code_review.run({"path": str(sample)}, cfg, LOG)
    assert knowledge_files(cfg, "code_reviews") == []


def test_fma_review_scores_rpn_files_report_and_discussion(isolated_home, ollama, sample):
    from fleet.db import open_store
    from fleet.skills import fma_review

    cfg = model_config(isolated_home, ollama.url)
    modes = [{"component": "ratio", "failure_mode": "ZeroDivisionError", "cause": "b == 0", "effect": "task crashes",
              "line": 11, "severity": 6, "likelihood": 5, "detection": 2, "mitigation": "validate b"},
             {"component": "find_user", "failure_mode": "SQL injection", "cause": "string formatting",
              "effect": "data leak", "line": 7, "severity": 10, "likelihood": 6, "detection": 8,
              "mitigation": "parameters"}]
    ollama.reply(json.dumps({"summary": "Two risks.", "failure_modes": modes}))
    out = fma_review.run({"path": str(sample), "agent": "coder_1"}, cfg, LOG)
    assert "FMEA" in prompt_of(ollama) and "find_user" in prompt_of(ollama)
    assert [m["rpn"] for m in out["failure_modes"]] == [480, 60] and out["max_rpn"] == 480
    report = Path(out["report"])
    assert report.parent == Path(cfg["paths"]["knowledge"]) / "fma_reviews"
    assert report.name == f"src_users.py_review_{today()}_coder_1.md" and "| 1 | 480 |" in report.read_text()
    store = open_store(cfg)
    turns = store.inbox(f"discussion:{out['discussion']['thread']}", unread_only=False, channel="pool")
    store.close()
    assert len(turns) == 1 and "SQL injection (RPN 480)" in turns[0]["body"]
    ollama.reply(json.dumps({"summary": "x", "failure_modes": [dict(modes[0], severity=11)]}))
    with pytest.raises(ModelOutputError):
        fma_review.run({"path": str(sample), "agent": "coder_1", "discuss": False}, cfg, LOG)


def test_code_discuss_turns_go_to_messages_and_transcript(isolated_home, ollama, sample):
    from fleet.db import open_store
    from fleet.skills import code_discuss

    cfg = model_config(isolated_home, ollama.url)
    ollama.reply("ratio() should reject b == 0 at line 11 rather than crash.")
    first = code_discuss.run({"thread": "users-module", "path": str(sample), "message": "Is ratio() safe?",
                              "author": "alice", "persona": "critic", "agent": "coder_1"}, cfg, LOG)
    assert "Is ratio() safe?" in prompt_of(ollama) and "def ratio(a, b):" in prompt_of(ollama)
    assert first["turns"] == 2 and first["last_turn"]["persona"] == "critic"
    ollama.reply("Agreed; a guard clause costs nothing on the hot path.")
    second = code_discuss.run({"thread": "users-module", "agent": "coder_2"}, cfg, LOG)
    assert "alice: Is ratio() safe?" in prompt_of(ollama) and "ratio() should reject" in prompt_of(ollama)
    assert second["turns"] == 3 and second["last_turn"]["persona"] == "performance"  # next after critic
    store = open_store(cfg)
    rows = store.inbox("discussion:users-module", unread_only=False, channel="pool")
    store.close()
    assert [r["sender"] for r in rows] == ["alice", "coder_1", "coder_2"]
    transcript = Path(second["transcript"])
    assert transcript == Path(cfg["paths"]["knowledge"]) / "code_discussion" / "users-module.md"
    text = transcript.read_text()
    assert text.index("Is ratio() safe?") < text.index("should reject") < text.index("guard clause")


GOOD_DRAFT = '''Here is the skill:
```python
"""word_count skill: counts words in a text file under the fleet home."""

from pathlib import Path

DESCRIPTION = "Count words in a file."
PAYLOAD_SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
                  "additionalProperties": False}
REQUIRES_MODEL = False
REQUIRES_NETWORK = False
IDEMPOTENT = True
TIMEOUT_S = 30


def run(payload, config, log):
    text = Path(payload["path"]).read_text()
    log.info("counted")
    return {"words": len(text.split())}
```
'''


def test_skill_draft_written_checked_never_imported(isolated_home, ollama):
    import sys

    from fleet.skills import skill_draft

    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(GOOD_DRAFT)
    out = skill_draft.run({"name": "word_count", "description": "Count the words in a text file.", "agent": "c1"},
                          cfg, LOG)
    assert "run(payload: dict, config: dict, log)" in prompt_of(ollama)
    draft = Path(out["draft"])
    assert draft == Path(cfg["paths"]["knowledge"]) / "code_drafts" / f"word_count_draft_{today()}_c1.py"
    assert out["interface_ok"] is True and out["problems"] == [] and out["installed"] is False
    assert "def run(payload, config, log):" in draft.read_text() and "word_count" not in sys.modules
    assert not (Path(__file__).resolve().parent.parent / "fleet" / "skills" / "word_count.py").exists()
    bad = GOOD_DRAFT.replace("REQUIRES_NETWORK = False", "import httpx\nREQUIRES_NETWORK = False").replace(
        "def run(payload, config, log):", "def run(payload):")
    ollama.reply(bad)
    out2 = skill_draft.run({"name": "word_count2", "description": "Count the words in a text file."}, cfg, LOG)
    assert out2["interface_ok"] is False
    assert any("run(payload, config, log)" in p for p in out2["problems"])
    assert any("REQUIRES_NETWORK" in p for p in out2["problems"])
    ollama.reply("```python\ndef run(payload, config, log)\n    return {}\n```")
    with pytest.raises(ModelOutputError, match="not valid Python"):
        skill_draft.run({"name": "broken_one", "description": "Something that breaks."}, cfg, LOG)
    assert not list((Path(cfg["paths"]["knowledge"]) / "code_drafts").glob("broken_one*"))
