"""The auto-start service for the supervisor: generates a systemd user unit
(Linux), a launchd LaunchAgent plist (macOS) or a Task Scheduler definition
(Windows), and installs / uninstalls it idempotently, explaining the usual
pitfalls (no session bus, linger off) instead of passing raw errors through.
"""

from __future__ import annotations

import getpass
import os
import plistlib
import re
import shutil
import subprocess  # nosec B404
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape  # nosec B406 - escapes output, parses nothing

REPO_ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("linux", "macos", "windows")
SYSTEMD_BACKOFF_VERSION = 254  # RestartSteps= / RestartMaxDelaySec= appeared in systemd 254


class ServiceError(Exception):
    """Install or uninstall failed; the message says what to do."""


@dataclass
class Plan:
    platform: str
    name: str
    path: Path            # where the definition file goes
    content: bytes
    commands: list[list[str]] = field(default_factory=list)  # what install runs after writing
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.platform == "windows":
            return self.content.decode("utf-16")
        return self.content.decode("utf-8")


def current_platform() -> str:
    return {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux")


def venv_python() -> str:
    """The virtualenv's interpreter as an absolute path (not resolved: resolving
    a venv's symlink would escape the venv)."""
    for candidate in (REPO_ROOT / ".venv" / "bin" / "python", REPO_ROOT / ".venv" / "Scripts" / "python.exe"):
        if candidate.exists():
            return str(candidate)
    return os.path.abspath(sys.executable)


def supervisor_script() -> str:
    return str(REPO_ROOT / "fleet" / "supervisor.py")


def systemd_version() -> int | None:
    exe = shutil.which("systemctl")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True,  # nosec B603
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else None


# -- systemd ----------------------------------------------------------------
def _sd_escape(value: str) -> str:
    """Quote one word for a systemd unit line; '%' starts a specifier."""
    value = value.replace("%", "%%")
    if re.search(r'[\s"\'\\;]', value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


UNIT_MARKER = "# Written by `lead_client.py install-service`; regenerate rather than edit."


def render_systemd(cfg: dict, *, python: str | None = None, version: int | None = None) -> str:
    svc = cfg["service"]
    python = python or venv_python()
    home = cfg["home"]
    stop_timeout = int(cfg["supervisor"]["stop_timeout_s"] + 30)
    lines = [
        UNIT_MARKER,
        "[Unit]",
        f"Description=Fleet supervisor ({home.replace('%', '%%')})",
        # a file: URI percent-encodes; each '%' then doubles, as systemd reads specifiers
        "Documentation=" + (REPO_ROOT / "README.md").as_uri().replace("%", "%%"),
        f"StartLimitIntervalSec={int(svc['start_limit_interval_s'])}",
        f"StartLimitBurst={svc['start_limit_burst']}",
        "",
        "[Service]",
        "Type=simple",
        # WorkingDirectory takes the rest of the line as the path: no quotes
        f"WorkingDirectory={str(REPO_ROOT).replace('%', '%%')}",
        f"Environment={_sd_escape('FLEET_HOME=' + home)}",
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={_sd_escape(python)} {_sd_escape(supervisor_script())}",
        "Restart=on-failure",
        f"RestartSec={svc['restart_sec']:g}",
        "RestartForceExitStatus=SIGHUP SIGPIPE",
        # Exit 78 (configuration error) will not fix itself by restarting.
        "RestartPreventExitStatus=78",
        # SIGTERM goes to the supervisor only; it drains its workers itself.
        "KillMode=mixed",
        f"TimeoutStopSec={stop_timeout}",
    ]
    if version is not None and version >= SYSTEMD_BACKOFF_VERSION:
        lines += ["RestartSteps=5", "RestartMaxDelaySec=60"]
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def _user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "systemd" / "user"


# -- launchd ----------------------------------------------------------------
def launchd_label(cfg: dict) -> str:
    return f"local.{cfg['service']['name']}"


def render_plist(cfg: dict, *, python: str | None = None) -> bytes:
    logs = Path(cfg["paths"]["logs"])
    data = {
        "Label": launchd_label(cfg),
        # --under-launchd: a configuration error exits 0, which KeepAlive below does not restart
        "ProgramArguments": [python or venv_python(), supervisor_script(), "--under-launchd", launchd_label(cfg)],
        "WorkingDirectory": str(REPO_ROOT),
        "EnvironmentVariables": {
            "FLEET_HOME": cfg["home"],
            "PYTHONUNBUFFERED": "1",
            "PATH": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        },
        "RunAtLoad": True,
        # Restart when it exits with an error; a clean stop (exit 0) stays stopped, and
        # so does a configuration error (78), which the supervisor reports as 0 here.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": int(max(1, cfg["service"]["restart_sec"])),
        "ExitTimeOut": int(cfg["supervisor"]["stop_timeout_s"] + 30),
        "ProcessType": "Background",
        "StandardOutPath": str(logs / "service.out.log"),
        "StandardErrorPath": str(logs / "service.err.log"),
    }
    return plistlib.dumps(data, fmt=plistlib.FMT_XML, sort_keys=True)


# -- Windows Task Scheduler --------------------------------------------------
def render_task_xml(cfg: dict, *, python: str | None = None) -> str:
    python = python or venv_python()
    user = getpass.getuser()
    interval = max(60, int(cfg["service"]["restart_sec"]))
    args = f'-u "{supervisor_script()}"'
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>Fleet supervisor ({escape(cfg['home'])}); written by lead_client.py install-service</Description>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{escape(user)}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{escape(user)}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT{interval // 60}M</Interval>
      <Count>{cfg['service']['start_limit_burst']}</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(python)}</Command>
      <Arguments>{escape(args)}</Arguments>
      <WorkingDirectory>{escape(cfg['home'])}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


# -- plans --------------------------------------------------------------------
def plan(cfg: dict, platform: str | None = None) -> Plan:
    platform = platform or current_platform()
    name = cfg["service"]["name"]
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise ServiceError(f"[service] name {name!r} may only hold letters, digits, '.', '_' and '-'")
    if platform == "linux":
        text = render_systemd(cfg, version=systemd_version())
        unit = f"{name}.service"
        return Plan("linux", name, _user_unit_dir() / unit, text.encode(),
                    [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", unit]])
    if platform == "macos":
        label = launchd_label(cfg)
        path = Path(os.path.expanduser("~")) / "Library" / "LaunchAgents" / f"{label}.plist"
        return Plan("macos", name, path, render_plist(cfg),
                    [["launchctl", "bootstrap", f"gui/{os.getuid() if hasattr(os, 'getuid') else 0}", str(path)]])
    if platform == "windows":
        path = Path(cfg["home"]) / f"{name}-task.xml"
        return Plan("windows", name, path, render_task_xml(cfg).encode("utf-16"),
                    [["schtasks", "/Create", "/TN", name, "/XML", str(path), "/F"]])
    raise ServiceError(f"unknown platform {platform!r}; use one of {', '.join(PLATFORMS)}")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise ServiceError(f"`{cmd[0]}` is not installed or not on PATH; the service definition was written but "
                           f"not registered. Run by hand: {' '.join(cmd)}")
    return subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=60, check=False)  # nosec B603


_NO_BUS = re.compile(r"Failed to connect to (user scope )?bus|DBUS_SESSION_BUS_ADDRESS|XDG_RUNTIME_DIR|No medium found",
                     re.IGNORECASE)


def explain_systemctl_failure(cmd: list[str], stderr: str, unit_path: Path) -> str:
    if _NO_BUS.search(stderr):
        uid = os.getuid() if hasattr(os, "getuid") else "UID"
        return (f"`{' '.join(cmd)}` cannot reach your user's service manager: this shell has no session bus "
                f"(XDG_RUNTIME_DIR / DBUS_SESSION_BUS_ADDRESS unset; usual after `su`/`sudo -u`, in containers or "
                f"some ssh sessions). The unit is written to {unit_path}. Log in as this user directly (ssh or a "
                f"desktop session), or run `export XDG_RUNTIME_DIR=/run/user/{uid}`, then run install-service again")
    return f"`{' '.join(cmd)}` failed: {stderr.strip().splitlines()[-1] if stderr.strip() else 'no message'}"


def linger_enabled(user: str | None = None) -> bool | None:
    """Whether systemd keeps this user's services running without a login (None: unknown)."""
    user = user or getpass.getuser()
    if Path(f"/var/lib/systemd/linger/{user}").exists():
        return True
    exe = shutil.which("loginctl")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "show-user", user, "--property=Linger"],  # nosec B603
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return False if Path("/var/lib/systemd/linger").is_dir() else None
    return out.stdout.strip().endswith("=yes")


def linger_note(user: str | None = None) -> str | None:
    user = user or getpass.getuser()
    state = linger_enabled(user)
    if state:
        return None
    return (f"linger is {'off' if state is False else 'unknown'} for {user}: the fleet starts at your login and "
            f"stops at logout. To run it from boot without a login: sudo loginctl enable-linger {user}")


def _not_ours(p: Plan, cfg: dict) -> str | None:
    """Why an existing service file is not this fleet's to replace or remove:
    Fleet did not write it, or it runs the fleet of another home (the
    default name is the same for every home). None when it is ours."""
    if p.platform == "windows" or not p.path.exists():
        return None
    try:
        if p.platform == "linux":
            lines = p.path.read_text(encoding="utf-8", errors="replace").splitlines()
            if not lines or lines[0] != UNIT_MARKER:
                return "Fleet did not write it"
            ours = f"Environment={_sd_escape('FLEET_HOME=' + cfg['home'])}"
            if ours not in lines:
                other = next((ln.split("FLEET_HOME=", 1)[1].strip('"') for ln in lines if "FLEET_HOME=" in ln), "?")
                return f"it runs the fleet at {other}"
        else:
            home = (plistlib.loads(p.path.read_bytes()).get("EnvironmentVariables") or {}).get("FLEET_HOME")
            if home is None:
                return "Fleet did not write it"
            if home != cfg["home"]:
                return f"it runs the fleet at {home}"
    except (OSError, ValueError, plistlib.InvalidFileException) as exc:
        return f"it cannot be read ({exc})"
    return None


def installed_plan(cfg: dict) -> Plan | None:
    """This fleet's service on this platform when it is installed (its file
    exists and, where Fleet can tell, was written for this home), else None."""
    try:
        p = plan(cfg)
    except ServiceError:
        return None
    if not p.path.exists() or _not_ours(p, cfg) is not None:
        return None
    return p


def _refuse_foreign(p: Plan, cfg: dict, doing: str) -> None:
    why = _not_ours(p, cfg)
    if why:
        raise ServiceError(f"will not {doing} {p.path}: {why}. Give this fleet its own [service] name in "
                           "fleet.toml, or remove that file yourself if it is no longer used")


def _write_if_changed(path: Path, content: bytes) -> bool:
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return True


def install(cfg: dict, *, supervisor_running: int | None = None) -> dict:
    """Write and register the service; start it unless a supervisor already runs."""
    p = plan(cfg)
    _refuse_foreign(p, cfg, "replace")
    changed = _write_if_changed(p.path, p.content)
    notes: list[str] = []
    started = False
    if p.platform == "linux":
        for cmd in p.commands:
            res = _run(cmd)
            if res.returncode != 0:
                raise ServiceError(explain_systemctl_failure(cmd, res.stderr, p.path))
        unit = f"{p.name}.service"
        if supervisor_running:
            notes.append(f"a supervisor already runs (pid {supervisor_running}) outside the service; stop it "
                         f"(`lead_client.py stop`), then `systemctl --user start {unit}`")
        else:
            res = _run(["systemctl", "--user", "restart" if changed else "start", unit])
            if res.returncode != 0:
                raise ServiceError(explain_systemctl_failure(["systemctl", "--user", "start", unit], res.stderr, p.path)
                                   + f"; see `journalctl --user -u {unit}`")
            started = True
        note = linger_note()
        if note:
            notes.append(note)
    elif p.platform == "macos":
        domain = p.commands[0][2]
        _run(["launchctl", "bootout", f"{domain}/{launchd_label(cfg)}"])  # idempotent: not loaded is fine
        if supervisor_running:
            notes.append(f"a supervisor already runs (pid {supervisor_running}); the agent was written but not "
                         f"loaded. Stop it, then: launchctl bootstrap {domain} {p.path}")
        else:
            res = _run(p.commands[0])
            if res.returncode != 0:
                raise ServiceError(f"`launchctl bootstrap` failed: {res.stderr.strip() or res.stdout.strip()}")
            started = True
    else:
        res = _run(p.commands[0])
        if res.returncode != 0:
            raise ServiceError(f"`schtasks /Create` failed: {res.stderr.strip() or res.stdout.strip()}")
        notes.append(f"the task starts at your next logon; start it now with: schtasks /Run /TN {p.name}")
    return {"platform": p.platform, "name": p.name, "path": str(p.path), "changed": changed,
            "started": started, "notes": notes}


def uninstall(cfg: dict) -> dict:
    """Stop, unregister and remove the service; nothing installed is fine."""
    p = plan(cfg)
    _refuse_foreign(p, cfg, "remove")
    existed = p.path.exists()
    notes: list[str] = []
    not_stopped: str | None = None
    if p.platform == "linux":
        unit = f"{p.name}.service"
        if existed:
            not_stopped = _disable_systemd_unit(unit)
            p.path.unlink()  # removed even when systemd could not be reached: nothing starts it again
            if not_stopped is None:
                _run(["systemctl", "--user", "daemon-reload"])
            else:
                notes.append(f"{p.path} is removed, but {not_stopped}")
    elif p.platform == "macos":
        if existed:
            target = f"{p.commands[0][2]}/{launchd_label(cfg)}"
            try:
                _run(["launchctl", "bootout", target])  # not loaded is fine
            except ServiceError as exc:  # no launchctl: the file goes all the same
                not_stopped = (f"the agent could not be unloaded: {exc}; a fleet it started keeps running until "
                               f"you log out (stop it with `lead_client.py stop`, or run `launchctl bootout {target}`)")
                notes.append(f"{p.path} is removed, but {not_stopped}")
            p.path.unlink()
    else:
        res = _run(["schtasks", "/Delete", "/TN", p.name, "/F"])
        if res.returncode == 0:
            existed = True
        if p.path.exists():
            p.path.unlink()
    if not existed:
        notes.append("no service was installed; nothing changed")
    return {"platform": p.platform, "name": p.name, "path": str(p.path), "removed": existed,
            "stopped": existed and not_stopped is None, "not_stopped": not_stopped, "notes": notes}


def _disable_systemd_unit(unit: str) -> str | None:
    """`systemctl --user disable --now UNIT`; None when done (or the unit was
    not loaded), else what could not be done and how to finish it by hand."""
    cmd = ["systemctl", "--user", "disable", "--now", unit]
    try:
        res = _run(cmd)
    except ServiceError as exc:  # no systemctl at all
        return f"it could not be stopped or disabled: {exc}"
    if res.returncode == 0 or "not loaded" in res.stderr or "does not exist" in res.stderr:
        return None
    if _NO_BUS.search(res.stderr):
        why = ("this shell has no session bus (XDG_RUNTIME_DIR / DBUS_SESSION_BUS_ADDRESS unset; usual after "
               "`su`/`sudo -u`, in containers or some ssh sessions)")
    else:
        why = f"`{' '.join(cmd)}` failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else 'no message'}"
    return (f"{unit} could not be stopped or disabled: {why}. A fleet it started keeps running until you log out; "
            f"stop it with `lead_client.py stop`, or from a login session run `systemctl --user stop {unit}` "
            "and `systemctl --user daemon-reload`")
