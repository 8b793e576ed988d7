"""The deterministic gates of a workflow, run in its worktree: ruff and bandit
on the changed Python files, the repository's test command, and the learned
rules. Each runs in a subprocess with a timeout, a clean environment (no
secrets) and, where the system allows it, no network (a new network namespace).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUTPUT_LIMIT = 8000


@functools.lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
    """`unshare -rn` when this system lets an unprivileged user make a
    network namespace (then the gate has no network at all), else nothing."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (unshare, "-rn") if ok else ()


def clean_env(worktree: str) -> dict:
    """PATH (with this Python's bin folder first, where ruff and bandit live),
    a throw-away HOME, and nothing else: no API keys, no store DSN."""
    bindir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bindir, os.environ.get("PATH", "/usr/bin:/bin")])
    home = tempfile.mkdtemp(prefix="fleet-gate-home-")
    return {"PATH": path, "HOME": home, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": worktree, "NO_PROXY": "*"}


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def run_gate(name: str, argv: list[str], worktree: str, timeout_s: float) -> dict:
    """Run one gate; {name, command, ok, returncode, output (bounded), seconds}."""
    env = clean_env(worktree)
    started = time.monotonic()
    try:
        proc = subprocess.run([*_netns_prefix(), *argv], cwd=worktree, env=env, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
        output = (proc.stdout + proc.stderr).strip()
        ok, code = proc.returncode == 0, proc.returncode
    except subprocess.TimeoutExpired as exc:
        partial = (exc.stdout or b"") if isinstance(exc.stdout, bytes) else (exc.stdout or "").encode()
        output = f"timed out after {timeout_s:g} s\n" + partial.decode("utf-8", "replace")
        ok, code = False, None
    except OSError as exc:
        output, ok, code = f"could not run {argv[0]}: {exc}", False, None
    finally:
        shutil.rmtree(env["HOME"], ignore_errors=True)
    if len(output) > OUTPUT_LIMIT:
        output = output[:OUTPUT_LIMIT // 2] + "\n[...]\n" + output[-OUTPUT_LIMIT // 2:]
    return {"name": name, "command": " ".join(shlex.quote(a) for a in argv), "ok": ok, "returncode": code,
            "output": output, "seconds": round(time.monotonic() - started, 3)}


def run_gates(worktree: str, changed: list[str], *, test_command: str, timeout_s: float,
              rules_check=None) -> list[dict]:
    """Every gate, in order (all run, so the executor sees every failure at
    once). `rules_check(worktree, changed)` -> a gate dict or None."""
    results = []
    py = [f for f in changed if f.endswith(".py")]
    for name, argv in (("ruff", ["check", "--no-cache", "--select", "E9,F,B", *py]),
                       ("bandit", ["-q", "-ll", *py])):
        if not py:
            continue
        tool = _tool(name)
        if tool is None:
            results.append({"name": name, "command": name, "ok": False, "returncode": None,
                            "output": f"{name} is not installed: install it (pip install {name}) so the "
                                      f"gate can run; a gate that cannot run does not pass"})
            continue
        results.append(run_gate(name, [tool, *argv], worktree, timeout_s))
    if test_command.strip():
        results.append(run_gate("tests", shlex.split(test_command), worktree, timeout_s))
    if rules_check is not None:
        verdict = rules_check(worktree, changed)
        if verdict is not None:
            results.append(verdict)
    return results
