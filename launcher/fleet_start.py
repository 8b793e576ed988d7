"""Starting a stopped fleet from the launcher: the installed auto-start
service when there is one (systemd user unit, launchd agent, scheduled task),
else the supervisor run detached, its console output in <home>/logs/.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 - fixed argument lists, no shell
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONSOLE_LOG = "supervisor.console.log"


def installed_service(cfg: dict):
    """The service_install Plan of this fleet's installed service, or None."""
    from fleet import service_install

    return service_install.installed_plan(cfg)


def start_command(cfg: dict, plan) -> list[str]:
    """The service manager's command that starts the installed service now."""
    from fleet import service_install

    if plan.platform == "linux":
        return ["systemctl", "--user", "start", f"{plan.name}.service"]
    if plan.platform == "macos":
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return ["launchctl", "kickstart", f"gui/{uid}/{service_install.launchd_label(cfg)}"]
    return ["schtasks", "/Run", "/TN", plan.name]


class FleetStarter:
    """Starts the fleet once per request; remembers only the supervisor
    process it started itself (to reap it), never any other."""

    def __init__(self):
        self.started: subprocess.Popen | None = None

    def start(self, cfg: dict) -> dict:
        """{"how": "service"|"detached", "detail", "pid"?}; raises RuntimeError
        with what to do when it cannot."""
        plan = installed_service(cfg)
        if plan is not None:
            cmd = start_command(cfg, plan)
            exe = shutil.which(cmd[0])
            if exe is None:
                raise RuntimeError(f"the service {plan.name} is installed but `{cmd[0]}` is not on PATH; "
                                   f"start it by hand: {' '.join(cmd)}")
            res = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=60,  # nosec B603
                                 check=False)
            if res.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd)}` failed: {(res.stderr or res.stdout).strip()}")
            return {"how": "service", "detail": f"started the installed service ({' '.join(cmd)})"}
        return self.start_detached(cfg)

    def start_detached(self, cfg: dict) -> dict:
        logs = Path(cfg["paths"]["logs"])
        logs.mkdir(parents=True, exist_ok=True)
        console = logs / CONSOLE_LOG
        env = dict(os.environ, FLEET_HOME=cfg["home"])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        # Detached: its own session (POSIX) or process group without a console (Windows), so closing the
        # launcher or its terminal does not stop the fleet.
        detach = ({"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
                  if os.name == "nt" else {"start_new_session": True})
        with open(console, "ab") as out:
            proc = subprocess.Popen(  # nosec B603 - this interpreter, the repository's supervisor
                [sys.executable, str(REPO_ROOT / "fleet" / "supervisor.py"), "--home", cfg["home"], "--quiet"],
                cwd=cfg["home"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                close_fds=True, **detach)
        self.started = proc
        return {"how": "detached", "pid": proc.pid,
                "detail": f"started the supervisor detached (pid {proc.pid}); console output: "
                          f"{os.path.relpath(console, cfg['home'])} in the fleet home"}

    def reap(self) -> int | None:
        """The exit code of the supervisor this launcher started, once it has exited."""
        if self.started is not None:
            rc = self.started.poll()
            if rc is not None:
                self.started = None
                return rc
        return None
