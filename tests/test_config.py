"""Configuration: defaults, the generated fleet.toml, and every kind of bad
config giving a message that names the key, the expectation and what was found,
with exit status 78 from the real entry points; unknown keys warn with a hint."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import pytest

from fleet.config import (
    ConfigError,
    ConfigWarning,
    load_config,
    render_default_toml,
    skill_timeout,
    worker_names,
)
from tests.fakes.fleetproc import REPO, env_for

BAD_CONFIGS = [
    ("wrong type", "[queue]\nlease_s = \"long\"\n", ["[queue] lease_s", "expected float", "'long'"]),
    ("below minimum", "[workers]\ncoder_count = -1\n", ["[workers] coder_count", "at least 0", "-1"]),
    ("above maximum", "[queue]\nmax_attempts = 1000\n", ["[queue] max_attempts", "at most 100", "1000"]),
    ("not a choice", "[queue]\nsynchronous = \"sometimes\"\n", ["synchronous", "'normal'", "'sometimes'"]),
    ("bool for int", "[workers]\nresearcher = true\n", ["[workers] researcher", "integer", "True"]),
    ("list of non-strings", "[affinity]\ncoder = [1, 2]\n", ["[affinity] coder", "list of strings", "[1, 2]"]),
    ("section not a table", "supervisor = 5\n", ["[supervisor]", "expected a table", "5"]),
    ("not TOML", "[queue\nlease_s = 1\n", ["not valid TOML"]),
    ("per-skill timeout", "[skills.timeouts]\ncode_index = \"soon\"\n", ["[skills.timeouts] code_index", "float"]),
    # nan passes every min/max comparison; it crashed the first store call
    ("nan", "[queue]\nbusy_timeout_s = nan\n", ["[queue] busy_timeout_s", "finite", "nan"]),
    ("inf", "[queue]\nlease_s = inf\n", ["[queue] lease_s", "finite", "inf"]),
    ("unknown backend", "[store]\nbackend = \"mysql\"\n", ["[store] backend", "'postgresql'", "'mysql'"]),
    # a password in fleet.toml (shared, backed up, shown) is refused, never used
    ("password in a DSN URL", "[store]\nbackend = \"postgresql\"\ndsn = \"postgresql://fleet:hunter2@db/fleet\"\n",
     ["[store] dsn holds a password", "FLEET_STORE_DSN", "~/.pgpass"]),
    ("password in a key=value DSN", "[store]\ndsn = \"host=db user=fleet password=hunter2\"\n",
     ["[store] dsn holds a password"]),
]


@pytest.mark.parametrize("kind,text,needles", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_exits_78_naming_key_expected_and_found(isolated_home, kind, text, needles):
    (isolated_home / "fleet.toml").write_text(text)
    proc = subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py")], cwd=str(REPO),
                          env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 78, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert "configuration error" in proc.stderr
    assert "hunter2" not in proc.stderr  # a refused password is never echoed
    assert not (isolated_home / "fleet.db").exists()  # nothing was started or created


def test_config_that_is_not_utf8_exits_78(isolated_home):
    (isolated_home / "fleet.toml").write_bytes(b'[fleet]\nname = "caf\xe9"\n')
    proc = subprocess.run([sys.executable, str(REPO / "fleet" / "lead_client.py"), "tasks"], cwd=str(REPO),
                          env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 78 and "not valid UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_worker_entry_point_also_exits_78(isolated_home):
    (isolated_home / "fleet.toml").write_text("[queue]\nlease_s = -3\n")
    proc = subprocess.run([sys.executable, "-m", "fleet.worker", "--role", "coder"], cwd=str(REPO),
                          env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 78 and "[queue] lease_s" in proc.stderr


def test_unknown_keys_warn_with_the_closest_name(isolated_home):
    (isolated_home / "fleet.toml").write_text("[queue]\nleese_s = 5\n\n[supervisr]\nx = 1\n")
    proc = subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--check-config"],
                          cwd=str(REPO), env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "leese_s" in proc.stderr and "did you mean 'lease_s'" in proc.stderr
    assert "did you mean '[supervisor]'" in proc.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(isolated_home)
    assert any(issubclass(w.category, ConfigWarning) for w in caught)
    assert cfg["queue"]["lease_s"] == 60.0  # the typo changed nothing


def test_defaults_shipped_file_and_helpers(isolated_home):
    cfg = load_config(isolated_home)  # no fleet.toml at all: every default
    assert cfg["supervisor"]["backoff_initial_s"] == 1.0 and cfg["supervisor"]["backoff_max_s"] == 60.0
    assert cfg["paths"]["db"] == str(isolated_home / "fleet.db")
    assert ("coder_1", "coder") in worker_names(cfg) and ("researcher", "researcher") in worker_names(cfg)
    assert skill_timeout(cfg, "anything", None) == 600.0
    assert skill_timeout(cfg, "anything", 30) == 30.0
    shipped = (REPO / "fleet.toml").read_text()
    assert shipped == render_default_toml(), "fleet.toml is stale: run `python -m fleet.config > fleet.toml`"
    lines = shipped.splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^[A-Za-z0-9_\"-]+ = ", line)]
    assert len(keys) > 40
    for i in keys:  # every key has a comment above it or on its line
        assert lines[i - 1].startswith("#") or "  # " in lines[i], lines[i]
    (isolated_home / "fleet.toml").write_text(shipped)
    assert load_config(isolated_home)["workers"]["coder_count"] == 1
    (isolated_home / "fleet.toml").write_text("[workers]\ncoder_count = 3\n[skills.timeouts]\ncode_index = 45\n")
    cfg = load_config(isolated_home)
    assert [n for n, r in worker_names(cfg) if r == "coder"] == ["coder_1", "coder_2", "coder_3"]
    assert skill_timeout(cfg, "code_index", 600) == 45.0
    with pytest.raises(ConfigError):
        (isolated_home / "fleet.toml").write_text("[fleet]\neco_mode = 'yes'\n")
        load_config(isolated_home)


def test_fatal_start_errors_exit_non_zero_with_a_message(isolated_home):
    (isolated_home / "blocker").write_text("a file, not a folder")
    (isolated_home / "fleet.toml").write_text('[paths]\ndb = "blocker/fleet.db"\n')
    proc = subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--quiet"], cwd=str(REPO),
                          env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "cannot open the database" in proc.stderr and "blocker/fleet.db" in proc.stderr
    (isolated_home / "fleet.toml").write_text('[paths]\nlogs = "blocker/logs"\n')
    proc = subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--quiet"], cwd=str(REPO),
                          env=env_for(isolated_home), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 73 and "cannot write logs" in proc.stderr


def _run(home, *args):
    return subprocess.run([sys.executable, *args], cwd=str(REPO), env=env_for(home), capture_output=True,
                          text=True, timeout=60, check=False)


def test_fleet_toml_that_is_a_folder_or_a_dangling_link_exits_78(isolated_home):
    """Not a traceback (a folder), and not a quiet run on the defaults (a link
    to nothing, an unreadable file): each is a configuration error."""
    path = isolated_home / "fleet.toml"
    path.mkdir()
    for args in ([str(REPO / "fleet" / "supervisor.py"), "--check-config"],
                 [str(REPO / "fleet" / "lead_client.py"), "status"]):
        proc = _run(isolated_home, *args)
        assert proc.returncode == 78, proc.stderr
        assert "is a folder, not a file" in proc.stderr and "Traceback" not in proc.stderr
    path.rmdir()
    path.symlink_to(isolated_home / "gone.toml")
    proc = _run(isolated_home, str(REPO / "fleet" / "supervisor.py"), "--check-config")
    assert proc.returncode == 78 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (isolated_home / "fleet.db").exists()


def test_a_role_without_affinity_fails_check_config(isolated_home):
    """Before, --check-config passed and the role's workers were parked at exit 78."""
    (isolated_home / "fleet.toml").write_text("[workers]\nresearcher = 0\nbogus = 1\n")
    proc = _run(isolated_home, str(REPO / "fleet" / "supervisor.py"), "--check-config")
    assert proc.returncode == 78, proc.stderr
    assert "[workers] bogus = 1" in proc.stderr and "[affinity]" in proc.stderr and "bogus = []" in proc.stderr
    (isolated_home / "fleet.toml").write_text("[workers]\nbogus = 1\n[affinity]\nbogus = []\n")
    assert _run(isolated_home, str(REPO / "fleet" / "supervisor.py"), "--check-config").returncode == 0
    (isolated_home / "fleet.toml").write_text("[workers]\ncoder_count = 1\ncoder_1 = 1\n[affinity]\ncoder_1 = []\n")
    proc = _run(isolated_home, str(REPO / "fleet" / "supervisor.py"), "--check-config")
    assert proc.returncode == 78 and "both run a worker named 'coder_1'" in proc.stderr
