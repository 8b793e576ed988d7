"""security_audit on a real repository made for it, run by a real worker:
bandit, the masked secrets scan, dependency pins (requirements and
pyproject), a world-writable file, an executable script holding a key, and
the severity summary; nothing the audit reports shows a secret's value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.db import open_store
from fleet.skills.security_audit import judge_requirement
from tests.fakes.fleetproc import start_worker, stop, wait_until, write_config

KEY = "AKIA" + "Q" * 12 + "7ZX2"  # AWS key id format, made up


@pytest.mark.parametrize("line, verdict", [
    ("requests", ("medium", "unpinned: any version will be installed")),
    ("flask==3.*", ("medium", "wildcard version ==3.*")),
    ("httpx>=0.27", ("low", "lower bound only (>=0.27): a future major release is accepted")),
    ("httpx>=0.27,<1", None), ("psycopg[binary]~=3.2", None), ("rich==13.7.1  # pinned", None),
    ("-r base.txt", None), ("git+https://example.com/x.git", None), ("", None), ("# a comment", None),
    ("pkg @ https://example.com/pkg.whl", None),
    ('tomli; python_version < "3.11"', ("medium", "unpinned: any version will be installed")),
])
def test_dependency_pins_are_judged(line, verdict):
    assert judge_requirement(line) == verdict


def _repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "run.py").write_text("import subprocess\n\n\ndef go(cmd):\n"
                                         "    return subprocess.call(cmd, shell=True)\n")
    (repo / "requirements.txt").write_text("requests\nflask==3.*\nhttpx>=0.27,<1\n")
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = ["rich>=13"]\n')
    shared = repo / "shared.cfg"
    shared.write_text("mode = open\n")
    shared.chmod(0o666)
    script = repo / "deploy.sh"
    script.write_text(f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID={KEY}\naws s3 ls\n")
    script.chmod(0o755)
    return repo


def test_a_real_worker_audits_a_repository(isolated_home, tmp_path):
    repo = _repo(tmp_path)
    cfg = write_config(isolated_home, workers={"coder_count": 0, "security": 1},
                       affinity={"security": ["security_audit"]})
    store = open_store(cfg)
    worker = start_worker(isolated_home, "security", "security")
    try:
        task = store.enqueue("security_audit", {"path": str(repo), "pip_audit": False})
        done = wait_until(lambda: (t := store.get(task.id)).status in ("DONE", "FAILED") and t, 120, step=0.2,
                          what="the audit")
        assert done.status == "DONE", done.error
        result = done.result
        checks = {(f["check"], f["severity"], f["file"]) for f in result["findings"]}
        assert any(c == "bandit" and s == "high" and f.endswith("run.py") for c, s, f in checks), checks
        assert any(c == "secret" and f.endswith("deploy.sh") for c, _, f in checks)
        assert any(c == "executable_with_secret" and s == "critical" and f.endswith("deploy.sh") for c, s, f in checks)
        assert any(c == "world_writable" and s == "high" and f.endswith("shared.cfg") for c, s, f in checks)
        pins = sorted(f["message"] for f in result["findings"] if f["check"] == "dependency_pin")
        assert len(pins) == 3 and any(m.startswith("requests:") for m in pins) and \
            any("flask==3.*" in m for m in pins) and any("rich>=13" in m for m in pins), pins
        summary = result["summary"]
        assert summary["worst"] == "critical" and summary["by_severity"]["critical"] == 1
        assert summary["pip_audit"].startswith("did not run: turned off")
        report = Path(result["report"]).read_text()
        data = Path(result["data"]).read_text()
        assert "| critical | 1 |" in report and "Worst: **critical**" in report
        assert KEY not in report + data + json.dumps(result)  # masked everywhere
    finally:
        stop(worker, 15)
        store.close()


def test_a_file_or_an_empty_folder_is_refused_with_the_reason(isolated_home, tmp_path):
    from fleet.config import load_config
    from fleet.skills import security_audit
    from fleet.skills._common import SkillError

    cfg = load_config(isolated_home)
    (tmp_path / "empty").mkdir()
    (tmp_path / "one.py").write_text("x = 1\n")
    with pytest.raises(SkillError, match="holds no files"):
        security_audit.run({"path": str(tmp_path / "empty")}, cfg, None)
    with pytest.raises(SkillError, match="is a file; give the repository folder"):
        security_audit.run({"path": str(tmp_path / "one.py")}, cfg, None)
