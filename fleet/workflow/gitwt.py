"""Git for a workflow: its own worktree on branch fleet/wf-<id>, created from
the base commit beside (never in) the user's working tree; diffs checked and
applied there; one commit per workflow, found again after a crash by its
trailer. Never pushes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

AUTHOR_NAME = "Fleet workflow"
AUTHOR_EMAIL = "fleet-workflow@localhost"
TRAILER = "Fleet-Workflow"


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


def git_env() -> dict:
    """A clean environment for git: no user hooks' variables, no secrets."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.environ.get("HOME", "/tmp"),
                "GIT_AUTHOR_NAME": AUTHOR_NAME, "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
                "GIT_COMMITTER_NAME": AUTHOR_NAME, "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL})
    return env


def git(cwd: str | os.PathLike, *args: str, input_text: str | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `git args` in `cwd`; GitError (with git's stderr) when it fails and `check`."""
    proc = subprocess.run(["git", *args], cwd=str(cwd), input=input_text, capture_output=True, text=True,
                          env=git_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def resolve_commit(repo: str, ref: str) -> str:
    """The commit `ref` names in `repo` (GitError when it is not a git repository or has no such ref)."""
    return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.strip()


def branch_name(workflow_id: int) -> str:
    return f"fleet/wf-{workflow_id}"


def ensure_worktree(repo: str, path: str, workflow_id: int, base_commit: str) -> None:
    """Make `path` the workflow's worktree on its branch, at the base commit
    with nothing else in it. Idempotent: an existing worktree (a re-run after
    a crash) is reset to the base, and an existing branch is reused, so there
    is never a second branch."""
    branch = branch_name(workflow_id)
    if not (Path(path) / ".git").exists():
        git(repo, "worktree", "prune")
        exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if exists:
            git(repo, "worktree", "add", "--force", path, branch)
        else:
            git(repo, "worktree", "add", "-b", branch, path, base_commit)
    git(path, "reset", "--hard", "--quiet", base_commit)
    git(path, "clean", "-fdq")


def apply_check(path: str, diff: str) -> str | None:
    """None when `diff` applies cleanly in the worktree, else git's message."""
    proc = git(path, "apply", "--check", "--whitespace=nowarn", "-", input_text=diff, check=False)
    return None if proc.returncode == 0 else (proc.stderr or proc.stdout).strip() or "git apply --check failed"


def apply(path: str, diff: str) -> None:
    git(path, "apply", "--whitespace=nowarn", "-", input_text=diff)


def changed_files(path: str) -> list[str]:
    """Files the applied diff added or changed (deleted ones excluded), relative to the worktree."""
    git(path, "add", "-A")
    out = git(path, "diff", "--cached", "--name-only", "--diff-filter=ACMR").stdout
    return [line for line in out.splitlines() if line.strip()]


def staged_diff(path: str) -> str:
    git(path, "add", "-A")
    return git(path, "diff", "--cached").stdout


def commit_once(path: str, workflow_id: int, message: str) -> str:
    """Commit the worktree's changes on its branch once: when the branch tip
    already carries this workflow's trailer (a re-run after a crash) that
    commit is returned and nothing new is written."""
    tip = git(path, "log", "-1", "--format=%H%n%B").stdout
    sha, _, body = tip.partition("\n")
    if f"{TRAILER}: {workflow_id}" in body.splitlines():
        return sha.strip()
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "--no-verify", "-m", f"{message}\n\n{TRAILER}: {workflow_id}")
    return git(path, "rev-parse", "HEAD").stdout.strip()


def remove_worktree(repo: str, path: str) -> None:
    """Remove the worktree (the branch stays)."""
    if Path(path).exists():
        git(repo, "worktree", "remove", "--force", path, check=False)
    git(repo, "worktree", "prune", check=False)


def branch_has_commits(repo: str, workflow_id: int, base_commit: str) -> bool:
    proc = git(repo, "rev-list", "--count", f"{base_commit}..refs/heads/{branch_name(workflow_id)}", check=False)
    return proc.returncode == 0 and proc.stdout.strip() not in ("", "0")


def delete_branch(repo: str, workflow_id: int) -> None:
    git(repo, "branch", "-D", branch_name(workflow_id), check=False)


def read_bounded(path: str, rel: str, limit: int) -> str | None:
    """The first `limit` bytes of a worktree file as text; None when it is
    absent or outside the worktree."""
    root = Path(path).resolve()
    target = (root / rel).resolve()
    if root not in target.parents or not target.is_file():
        return None
    with open(target, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", "replace")
    return text + ("\n[... truncated ...]" if len(data) > limit else "")


def tracked_files(path: str, limit: int = 200) -> list[str]:
    return git(path, "ls-files").stdout.splitlines()[:limit]
