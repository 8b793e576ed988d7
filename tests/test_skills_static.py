"""No-model skills on real inputs: code_quality (AST metrics + ruff), security_review
(bandit + secrets scan) and rag_index/rag_query (FTS5) over this project's own source
and small planted trees, checked against facts known independently of the skills."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.skills import code_quality, rag_index, rag_query, security_review
from fleet.skills._common import SkillError, today

LOG = logging.getLogger("test.skills.static")
REPO = Path(__file__).resolve().parent.parent


def def_line(path: Path, name: str) -> int:
    """The line of `def name` found by plain text search (independent of the skills' AST code)."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(rf"\s*def {name}\(", line):
            return i
    raise AssertionError(f"def {name} not in {path}")


@pytest.fixture
def cfg(isolated_home):
    return load_config(isolated_home)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A snapshot of this project's fleet/ package (others may be editing the live tree)."""
    dest = tmp_path_factory.mktemp("snapshot") / "fleet"
    shutil.copytree(REPO / "fleet", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


PLANTED = '''import os


def branchy(x, items):
    if x > 0 and x < 10:
        return 1
    elif x < 0:
        return 2
    for i in items:
        if i:
            return 3
    return [j for j in items if j]


class Thing:
    """Documented."""

    def method(self):
        return 1
'''


def test_code_quality_on_this_project_finds_known_function(cfg, source):
    out = code_quality.run({"path": str(source), "lint": False}, cfg, LOG)
    data = json.loads(Path(out["data"]).read_text())
    tasks_py = source / "store" / "tasks.py"
    line = def_line(tasks_py, "reap_expired_leases")
    hits = [f for f in data["functions"] if f["name"].endswith(".reap_expired_leases")
            and f["file"].replace(os.sep, "/").endswith("fleet/store/tasks.py")]
    assert len(hits) == 1 and hits[0]["line"] == line and hits[0]["docstring"] is True
    assert out["summary"]["files"] >= 20 and out["summary"]["functions"] > 100
    assert Path(out["report"]) == Path(cfg["paths"]["knowledge"]) / "quality" / "reviews" / f"quality_review_{today()}.md"


def test_code_quality_metrics_and_ruff_on_planted_file(cfg, tmp_path):
    src = tmp_path / "proj" / "mod.py"
    src.parent.mkdir()
    src.write_text(PLANTED)
    out = code_quality.run({"path": str(src.parent), "max_complexity": 5, "max_function_lines": 5}, cfg, LOG)
    complex_ = {f["name"]: f for f in out["complex_functions"]}
    # 1 + if + and + elif + for + if + comprehension(1 + 1 filter) = 8
    assert complex_["branchy"]["complexity"] == 8 and complex_["branchy"]["line"] == 4
    assert [f["name"] for f in out["long_functions"]] == ["branchy"]
    missing = {m["name"] for m in out["missing_docstrings"]}
    assert missing == {"(module)", "branchy", "Thing.method"}
    assert out["lint"]["available"] is True
    f401 = [f for f in out["lint"]["findings"] if f["code"] == "F401"]
    assert len(f401) == 1 and f401[0]["line"] == 1 and "os" in f401[0]["message"]
    report = Path(out["report"]).read_text()
    assert "branchy` complexity 8" in report and "F401" in report


def test_code_quality_bad_path_is_clear(cfg, tmp_path):
    with pytest.raises(SkillError, match="does not exist"):
        code_quality.run({"path": str(tmp_path / "nope")}, cfg, LOG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkillError, match="no Python files"):
        code_quality.run({"path": str(tmp_path / "empty")}, cfg, LOG)


def test_security_review_bandit_and_masked_secrets(cfg, tmp_path):
    tree = tmp_path / "app"
    tree.mkdir()
    (tree / "run.py").write_text('"""Runs things."""\nimport subprocess\n\n\ndef go(cmd):\n'
                                 '    return subprocess.call(cmd, shell=True)\n')
    key = "AKIA" + "QWERTYUIOPASDFGH"       # built at run time so this test file holds no key
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
    (tree / "settings.toml").write_text(f'# config\naws_key = "{key}"\nname = "x"\ngithub = "{token}"\n'
                                        'api_key = "changeme-placeholder"\n')
    out = security_review.run({"path": str(tree)}, cfg, LOG)
    b602 = [f for f in out["findings"] if f["test_id"] == "B602"]
    assert len(b602) == 1 and b602[0]["line"] == 6 and b602[0]["severity"] == "high"
    found = {(Path(s["file"]).name, s["line"], s["rule"]) for s in out["secrets"]}
    assert ("settings.toml", 2, "aws_access_key_id") in found and ("settings.toml", 4, "github_token") in found
    assert not any(s["line"] == 5 for s in out["secrets"])  # placeholder is not a secret
    written = Path(out["report"]).read_text() + Path(out["data"]).read_text() + json.dumps(out)
    assert key not in written and token not in written and "AKIA…GH" in written
    assert Path(out["report"]).parent == Path(cfg["paths"]["knowledge"]) / "security" / "reviews"


def test_security_review_scans_this_project(cfg, source):
    out = security_review.run({"path": str(source), "min_severity": "medium"}, cfg, LOG)
    assert out["summary"]["bandit_available"] is True and out["summary"]["python_files"] >= 20
    assert all(f["severity"] in ("medium", "high") for f in out["findings"])
    assert out["summary"]["secrets_found"] == 0, out["secrets"]


def test_rag_index_this_project_and_query_finds_known_function(cfg, source):
    first = rag_index.run({"paths": [str(source)], "include_knowledge": False}, cfg, LOG)
    assert first["indexed"] >= 20 and first["index"]["chunks"] > first["indexed"]
    again = rag_index.run({"paths": [str(source)], "include_knowledge": False}, cfg, LOG)
    assert again["indexed"] == 0 and again["unchanged"] == first["indexed"]
    out = rag_query.run({"query": "reap_expired_leases", "limit": 5}, cfg, LOG)
    tasks_py = str((source / "store" / "tasks.py").resolve())
    line = def_line(source / "store" / "tasks.py", "reap_expired_leases")
    covering = [c for c in out["chunks"] if c["source"] == tasks_py and c["start_line"] <= line <= c["end_line"]]
    assert covering, [(c["source"], c["start_line"], c["end_line"]) for c in out["chunks"]]
    assert "def reap_expired_leases" in covering[0]["text"]
    assert out["chunks"][0]["score"] >= out["chunks"][-1]["score"]


def test_rag_index_is_incremental_by_hash(cfg, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Alpha notes about the lighthouse keeper.\n")
    (docs / "b.txt").write_text("Bravo notes about sourdough starters.\n")
    (docs / "img.bin").write_bytes(b"\0\1\2")
    kdir = Path(cfg["paths"]["knowledge"])
    (kdir / "summaries").mkdir(parents=True)
    (kdir / "summaries" / "s.md").write_text("A summary mentioning the lighthouse.\n")
    r1 = rag_index.run({"paths": [str(docs)]}, cfg, LOG)
    assert r1["indexed"] == 3 and r1["removed"] == 0
    os.utime(docs / "a.md", (time.time() + 5, time.time() + 5))  # touched, same content: hash says unchanged
    (docs / "b.txt").write_text("Bravo notes now about kombucha.\n")
    (docs / "a.md").touch()
    r2 = rag_index.run({"paths": [str(docs)]}, cfg, LOG)
    assert r2["indexed"] == 1 and r2["unchanged"] == 2
    assert rag_query.run({"query": "sourdough"}, cfg, LOG)["count"] == 0
    assert rag_query.run({"query": "kombucha"}, cfg, LOG)["chunks"][0]["source"].endswith("b.txt")
    (docs / "b.txt").unlink()
    r3 = rag_index.run({"paths": [str(docs)]}, cfg, LOG)
    assert r3["removed"] == 1 and rag_query.run({"query": "kombucha"}, cfg, LOG)["count"] == 0
    hits = rag_query.run({"query": "lighthouse"}, cfg, LOG)["chunks"]
    assert {Path(h["source"]).name for h in hits} == {"a.md", "s.md"}
    with pytest.raises(SkillError, match="no searchable words"):
        rag_query.run({"query": "*** ---"}, cfg, LOG)


def test_rag_query_before_indexing_is_clear(cfg):
    with pytest.raises(SkillError, match="run the rag_index skill first"):
        rag_query.run({"query": "x"}, cfg, LOG)


def test_secrets_file_and_keys_are_never_read(cfg, tmp_path, monkeypatch):
    from fleet.skills import summarize

    secrets = Path(cfg["paths"]["secrets"])
    secrets.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_text("export ANTHROPIC_API_KEY='sk-ant-" + "x" * 30 + "'\n")
    with pytest.raises(SkillError, match="holds secrets"):
        summarize.run({"path": str(secrets)}, cfg, LOG)
    docs = tmp_path / "d"
    docs.mkdir()
    cfg["paths"]["secrets"] = str(docs / "keys.txt")  # a secrets file inside an indexed folder
    (docs / "keys.txt").write_text("export TOKEN='abc123def456ghi789'\n")
    (docs / "notes.md").write_text("Ordinary notes about lighthouses.\n")
    out = rag_index.run({"paths": [str(docs)], "include_knowledge": False}, cfg, LOG)
    assert out["indexed"] == 1 and rag_query.run({"query": "TOKEN"}, cfg, LOG)["count"] == 0
    assert rag_query.run({"query": "lighthouses"}, cfg, LOG)["count"] == 1


# -- inputs that hang, exhaust memory or crash a skill (found in review) --------
@pytest.fixture
def hostile_tree(tmp_path):
    """A folder of real code next to things a skill must not read: a named
    pipe (a read blocks for ever), a link to /dev/zero (never ends), a link
    loop, a dangling link, a name that is not valid UTF-8, a 6 MiB .py file."""
    root = tmp_path / "tree"
    root.mkdir()
    (root / "good.py").write_text('def fine():\n    """ok"""\n    return 1\n')
    (root / "notes.md").write_text("# notes\nplain text\n")
    os.mkfifo(root / "pipe.py")
    os.mkfifo(root / "pipe.md")
    (root / "endless.py").symlink_to("/dev/zero")
    (root / "loop_a.md").symlink_to(root / "loop_b.md")
    (root / "loop_b.md").symlink_to(root / "loop_a.md")
    (root / "gone.py").symlink_to(root / "missing.py")
    (root / os.fsdecode(b"caf\xe9.py")).write_text("x = 1\n")
    with open(root / "huge.py", "wb") as fh:
        fh.truncate(6 << 20)
    return root


@pytest.mark.timeout(60)
def test_skills_skip_what_they_must_not_read_and_say_why_when_named(cfg, hostile_tree):
    from fleet.skills import code_index

    out = code_quality.run({"path": str(hostile_tree)}, cfg, LOG)
    assert out["summary"]["files"] == 1 and out["lint"]["available"]
    out = code_index.run({"path": str(hostile_tree)}, cfg, LOG)
    assert out["files"] == 1 and out["symbols"] >= 1
    out = security_review.run({"path": str(hostile_tree)}, cfg, LOG)
    assert out["summary"]["python_files"] == 1 and out["summary"]["bandit_available"]
    out = rag_index.run({"paths": [str(hostile_tree)]}, cfg, LOG)
    assert out["indexed"] >= 2
    for name, needle in (("pipe.py", "not a file or folder"), ("endless.py", "not a file or folder"),
                         ("loop_a.md", "cannot be followed")):
        with pytest.raises(SkillError, match=needle):
            code_quality.run({"path": str(hostile_tree / name)}, cfg, LOG)
