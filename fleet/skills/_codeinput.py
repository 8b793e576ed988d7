"""What the code-reading model skills look at: one source file (with line numbers) or a
git diff between two refs, read safely (refs checked, no shell) and capped in size.
"""

from __future__ import annotations

import re
import subprocess

from fleet.skills._common import (
    SkillError,
    display_path,
    looks_binary,
    read_text,
    resolve_input,
    safe_name,
)

_REF_PATTERN = "^[A-Za-z0-9._/~^@{}][A-Za-z0-9._/~^@{}:-]*$"
_REF = re.compile(_REF_PATTERN)

# The payload fields of a skill that reads one file or a git diff (its
# PAYLOAD_SCHEMA "properties" start with these; `load_target` reads them).
TARGET_PROPERTIES = {
    "path": {"type": "string", "minLength": 1, "description": "file to review (relative to the fleet home)"},
    "diff": {
        "type": "object",
        "properties": {
            "repo": {"type": "string", "minLength": 1, "description": "git work tree (relative to the fleet home)"},
            "base": {"type": "string", "pattern": _REF_PATTERN, "description": "base ref, e.g. HEAD~1 or main"},
            "head": {"type": "string", "pattern": _REF_PATTERN, "description": "head ref (default: the work tree)"},
            "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 200},
        },
        "required": ["repo", "base"],
        "additionalProperties": False,
    },
}


def load_target(payload: dict, config: dict, max_chars: int) -> dict:
    """{kind, label, name, text (line-numbered for files), raw, lines, truncated} for payload path | diff."""
    if payload.get("path"):
        path = resolve_input(config, payload["path"])
        if path.is_dir():
            raise SkillError(f"{payload['path']!r} is a folder; review one file at a time (or use code_quality for a tree)")
        if looks_binary(path):
            raise SkillError(f"{payload['path']!r} is a binary file, not source code")
        raw, truncated = read_text(path, max_chars)
        if not raw.strip():
            raise SkillError(f"{payload['path']!r} is empty; nothing to review")
        shown = display_path(config, path)
        lines = raw.splitlines()
        numbered = "\n".join(f"{i:5d} | {line}" for i, line in enumerate(lines, 1))
        return {"kind": "file", "label": shown, "name": safe_name(shown.replace("/", "_").replace("\\", "_")),
                "text": numbered, "raw": raw, "lines": len(lines), "truncated": truncated, "path": str(path)}
    diff = payload.get("diff")
    if not diff:
        raise SkillError("give either 'path' (a file) or 'diff' ({repo, base, head?})")
    repo = resolve_input(config, diff["repo"], kind="diff.repo")
    for key in ("base", "head"):
        if key in diff and (not _REF.match(diff[key]) or diff[key].startswith("-")):
            raise SkillError(f"diff.{key} {diff[key]!r} is not a git ref")
    rng = [diff["base"], diff["head"]] if diff.get("head") else [diff["base"]]
    cmd = ["git", "-C", str(repo), "diff", "--no-color", "--no-ext-diff", *rng, "--", *diff.get("paths", [])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)  # nosec B603 B607
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SkillError(f"git diff could not run: {exc}; is git installed?") from None
    if proc.returncode != 0:
        raise SkillError(f"git diff failed in {repo}: {proc.stderr.strip()[:300]}")
    raw = proc.stdout
    if not raw.strip():
        raise SkillError(f"no changes between {' and '.join(rng) if len(rng) > 1 else rng[0] + ' and the work tree'} in {repo}")
    truncated = len(raw) > max_chars
    raw = raw[:max_chars]
    label = f"diff {'..'.join(rng)} in {display_path(config, repo)}"
    return {"kind": "diff", "label": label, "name": safe_name(f"diff_{'_'.join(rng)}"), "text": raw, "raw": raw,
            "lines": raw.count("\n") + 1, "truncated": truncated, "path": str(repo)}

