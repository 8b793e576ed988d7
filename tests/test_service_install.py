"""install-service / uninstall-service: the systemd unit passes
`systemd-analyze --user verify` cleanly, backoff keys only for systemd >= 254,
the plist round-trips through plistlib with absolute paths only, the Windows
task XML parses, and install/uninstall are idempotent and explain a missing
session bus and linger (driven through a recording fake systemctl on PATH)."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fleet import service_install as si
from tests.conftest import require_system_part
from tests.fakes.cli_runner import cli

pytestmark = pytest.mark.timeout(120)
BAD_VERIFY = re.compile(r"Unknown key|Unknown section|ignoring|Failed to parse", re.IGNORECASE)


@pytest.fixture
def cfg(fleet_home):
    from fleet.config import load_config

    return load_config(fleet_home)


def _verify(unit_path: Path, tmp_path: Path) -> list[str]:
    """stderr lines of `systemd-analyze --user verify` that concern our unit
    (other installed user units, e.g. gpg-agent sockets, may complain too)."""
    import tempfile

    # a short runtime dir: socket units of other packages put paths under it
    runtime = tempfile.mkdtemp(prefix="sd-")
    try:
        env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        res = subprocess.run(["systemd-analyze", "--user", "verify", str(unit_path)], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return [ln for ln in res.stderr.splitlines() if str(unit_path) in ln or unit_path.name in ln]


@pytest.mark.parametrize("version", [252, 255])
def test_unit_passes_systemd_analyze_verify(cfg, tmp_path, version):
    require_system_part(shutil.which("systemd-analyze") is not None, "systemd-analyze",
                        "apt-get install systemd")
    actual = si.systemd_version()
    if version >= si.SYSTEMD_BACKOFF_VERSION and (actual or 0) < si.SYSTEMD_BACKOFF_VERSION:
        pytest.skip(f"installed systemd {actual} predates RestartSteps=; the generator leaves them out there")
    text = si.render_systemd(cfg, version=version)
    unit = tmp_path / "fleet.service"
    unit.write_text(text)
    lines = _verify(unit, tmp_path)
    assert not [ln for ln in lines if BAD_VERIFY.search(ln)], lines
    # an awkward fleet home (space, percent sign) is quoted and escaped correctly
    (tmp_path / "awkward.service").write_text(si.render_systemd(dict(cfg, home="/srv/my fleet/50%"), version=version))
    lines = _verify(tmp_path / "awkward.service", tmp_path)
    assert not [ln for ln in lines if BAD_VERIFY.search(ln)], lines
    # ... and so is an awkward checkout (WorkingDirectory takes no quotes; the
    # Documentation URI is percent-encoded, its '%' doubled). Found in review.
    monkey = pytest.MonkeyPatch()
    monkey.setattr(si, "REPO_ROOT", Path("/srv/repo with space/50%"))
    try:
        (tmp_path / "checkout.service").write_text(si.render_systemd(cfg, version=version))
    finally:
        monkey.undo()
    lines = _verify(tmp_path / "checkout.service", tmp_path)
    assert not [ln for ln in lines if BAD_VERIFY.search(ln) or "specifier" in ln], lines
    # the verifier does catch a mistake (so the checks above can fail)
    (tmp_path / "broken.service").write_text(text.replace("Restart=on-failure", "Restart=on-failure\nRestartz=1"))
    assert [ln for ln in _verify(tmp_path / "broken.service", tmp_path) if BAD_VERIFY.search(ln)]


def test_unit_contents(cfg):
    text = si.render_systemd(cfg, version=252)
    unit_sec, service_sec, install_sec = (text.split("[Unit]")[1].split("[Service]")[0],
                                          text.split("[Service]")[1].split("[Install]")[0],
                                          text.split("[Install]")[1])
    assert "StartLimitIntervalSec=" in unit_sec and "StartLimitBurst=" in unit_sec
    assert "StartLimit" not in service_sec
    exec_start = re.search(r"^ExecStart=(\S+) (\S+)$", service_sec, re.MULTILINE)
    assert exec_start and os.path.isabs(exec_start.group(1)) and exec_start.group(2).endswith("supervisor.py")
    assert ".venv" in exec_start.group(1) or exec_start.group(1) == os.path.abspath(os.sys.executable)
    for line in ("Environment=PYTHONUNBUFFERED=1", "Restart=on-failure", "RestartForceExitStatus=SIGHUP SIGPIPE",
                 f"WorkingDirectory={si.REPO_ROOT}", f"Environment=FLEET_HOME={cfg['home']}"):
        assert line in service_sec.splitlines()
    assert "WantedBy=default.target" in install_sec
    assert "RestartSteps" not in text
    assert "RestartSteps=" in si.render_systemd(cfg, version=254)


def test_unit_quotes_awkward_paths(cfg):
    cfg = dict(cfg, home="/srv/my fleet/50%")
    text = si.render_systemd(cfg, version=252)
    assert 'Environment="FLEET_HOME=/srv/my fleet/50%%"' in text


def test_plist_round_trips_with_absolute_paths(cfg):
    data = si.render_plist(cfg)
    assert b"~" not in data and b"$" not in data
    plist = plistlib.loads(data)
    assert plist["Label"] == "local.fleet" and plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["EnvironmentVariables"]["PYTHONUNBUFFERED"] == "1"
    for path in (*plist["ProgramArguments"][:2], plist["WorkingDirectory"], plist["StandardOutPath"],
                 plist["StandardErrorPath"]):
        assert os.path.isabs(path), path
    assert plistlib.loads(plistlib.dumps(plist)) == plist


def test_launchd_stops_restarting_a_fleet_whose_config_is_wrong(fleet_home, cfg):
    """Issue 17 L: KeepAlive {SuccessfulExit: false} restarted a fleet that
    exited 78 (configuration error) every ThrottleInterval, forever. The
    generated agent runs the supervisor with its launchd guard, which reports
    78 as a clean exit; launchd restarts only a non-zero one."""
    plist = plistlib.loads(si.render_plist(cfg))  # plutil may be absent: plistlib reads what launchd reads
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    args = plist["ProgramArguments"]
    assert args[2:] == ["--under-launchd", plist["Label"]]
    (fleet_home / "fleet.toml").write_text("[queue]\nmax_attempts = 'three'\n")
    env = {**os.environ, **plist["EnvironmentVariables"], "PATH": os.environ["PATH"]}
    run = subprocess.run(args, cwd=plist["WorkingDirectory"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    launchd_restarts = run.returncode != 0  # KeepAlive {SuccessfulExit: false}: restart on a non-zero exit
    assert not launchd_restarts, run
    assert "max_attempts" in run.stderr and f"launchctl kickstart gui/{os.getuid()}/{plist['Label']}" in run.stderr
    plain = subprocess.run(args[:2], cwd=plist["WorkingDirectory"], env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    assert plain.returncode == 78  # without the guard (systemd's RestartPreventExitStatus=78 reads this)


def test_windows_task_xml_parses(cfg):
    text = si.render_task_xml(cfg)
    root = ET.fromstring(text.replace('encoding="UTF-16"', ""))
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert root.find(".//t:Exec/t:Command", ns).text == si.venv_python()
    assert "supervisor.py" in root.find(".//t:Exec/t:Arguments", ns).text
    assert root.find(".//t:RestartOnFailure", ns) is not None
    assert root.find(".//t:LogonTrigger", ns) is not None


@pytest.mark.parametrize("platform", ["linux", "macos", "windows"])
def test_cli_dry_run_any_platform(fleet_home, platform):
    r = cli(fleet_home, "install-service", "--dry-run", "--platform", platform)
    assert r.rc == 0, r
    marker = {"linux": "[Service]", "macos": "<plist", "windows": "<Task"}[platform]
    assert marker in r.out
    doc = cli(fleet_home, "install-service", "--dry-run", "--platform", platform, "--json").json()
    assert doc["platform"] == platform and marker in doc["content"]


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$0 $*" >> "$FAKE_LOG"
case "$1" in --version) echo "systemd 252 (252.1)"; exit 0;; esac
if [ -n "$FAKE_NO_BUS" ]; then
  echo "Failed to connect to bus: \\$DBUS_SESSION_BUS_ADDRESS and \\$XDG_RUNTIME_DIR not defined" >&2
  exit 1
fi
exit 0
"""
FAKE_LOGINCTL = """#!/bin/sh
echo "$0 $*" >> "$FAKE_LOG"
echo "Linger=no"
"""


@pytest.fixture
def fake_tools(tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, body in (("systemctl", FAKE_SYSTEMCTL), ("loginctl", FAKE_LOGINCTL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    return env, log, tmp_path / "xdg-config" / "systemd" / "user" / "fleet.service"


@pytest.mark.skipif(si.current_platform() != "linux", reason="systemd path")
def test_install_uninstall_idempotent_with_linger_note(fleet_home, fake_tools):
    env, log, unit = fake_tools
    r = cli(fleet_home, "install-service", "--json", env=env)
    assert r.rc == 0, r
    doc = r.json()
    assert doc["changed"] is True and doc["started"] is True and unit.is_file()
    assert any("sudo loginctl enable-linger" in n for n in doc["notes"])
    calls = log.read_text()
    assert "--user daemon-reload" in calls and "--user enable fleet.service" in calls
    r = cli(fleet_home, "install-service", "--json", env=env)
    assert r.rc == 0 and r.json()["changed"] is False
    assert cli(fleet_home, "uninstall-service", "--json", env=env).json()["removed"] is True
    assert not unit.exists() and "disable --now fleet.service" in log.read_text()
    r = cli(fleet_home, "uninstall-service", "--json", env=env)
    assert r.rc == 0 and r.json()["removed"] is False


@pytest.mark.skipif(si.current_platform() != "linux", reason="systemd path")
def test_missing_session_bus_is_explained(fleet_home, fake_tools):
    env, _log, unit = fake_tools
    r = cli(fleet_home, "install-service", env={**env, "FAKE_NO_BUS": "1"})
    assert r.rc == 1
    assert "no session bus" in r.err and "XDG_RUNTIME_DIR=/run/user/" in r.err and str(unit) in r.err
    assert r.err.count("\n") == 1


@pytest.mark.skipif(si.current_platform() != "linux", reason="systemd path")
def test_a_unit_fleet_did_not_write_or_of_another_home_is_left_alone(fleet_home, fake_tools, tmp_path):
    # Found in review: uninstall stopped and deleted a hand-written fleet.service,
    # and the uninstall of a second home removed the first home's unit.
    env, log, unit = fake_tools
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/true\n")
    for command in ("install-service", "uninstall-service"):
        r = cli(fleet_home, command, env=env)
        assert r.rc != 0 and "Fleet did not write it" in r.err and "[service] name" in r.err, r
        assert unit.read_text() == "[Service]\nExecStart=/usr/bin/true\n"
    unit.unlink()
    assert cli(fleet_home, "install-service", env=env).rc == 0
    other = tmp_path / "other-home"
    other.mkdir()
    r = cli(other, "uninstall-service", env=env)
    assert r.rc != 0 and f"it runs the fleet at {fleet_home}" in r.err, r
    assert unit.is_file() and "disable" not in log.read_text()


@pytest.mark.skipif(si.current_platform() != "linux", reason="systemd path")
def test_uninstall_without_a_session_bus_removes_the_unit_and_says_what_was_not_stopped(fleet_home, tmp_path):
    """Issue 17 G: with no session bus, uninstall-service told the user to "run
    install-service again" and left the unit. The real systemctl, no bus."""
    require_system_part(shutil.which("systemctl") is not None, "systemctl", "apt-get install systemd")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "XDG_RUNTIME_DIR": "", "DBUS_SESSION_BUS_ADDRESS": ""}
    unit = tmp_path / "xdg-config" / "systemd" / "user" / "fleet.service"
    bus = subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=30, check=False)
    if not si._NO_BUS.search(bus.stderr):
        pytest.skip("a user service manager answers here even without the variables")
    r = cli(fleet_home, "install-service", env=env)
    assert r.rc == 1 and "no session bus" in r.err and unit.is_file(), r  # written, not registered
    r = cli(fleet_home, "uninstall-service", "--json", env=env)
    assert r.rc == 1, r
    doc = r.json()
    assert not unit.exists()
    assert doc["removed"] is True and doc["stopped"] is False and doc["exit"] == 1
    assert "could not be stopped" in doc["not_stopped"] and "no session bus" in doc["not_stopped"]
    assert "install-service again" not in r.err and "lead_client.py stop" in r.err
    r = cli(fleet_home, "uninstall-service", "--json", env=env)  # nothing left to do
    assert r.rc == 0 and r.json()["removed"] is False


def test_uninstall_of_a_launch_agent_without_launchctl_removes_it_and_says_so(cfg, monkeypatch):
    """Issue 17 G, the launchd side: the plist goes even when launchctl cannot
    unload it (here it is absent, as on any machine but a Mac)."""
    if shutil.which("launchctl"):
        pytest.skip("launchctl is installed here: this checks the case where it cannot run")
    monkeypatch.setattr(si, "current_platform", lambda: "macos")
    p = si.plan(cfg)
    p.path.parent.mkdir(parents=True, exist_ok=True)
    p.path.write_bytes(p.content)
    result = si.uninstall(cfg)
    assert not p.path.exists() and result["removed"] is True and result["stopped"] is False
    assert "could not be unloaded" in result["not_stopped"] and "launchctl bootout" in result["not_stopped"]
