"""GDPR erase of one agent's data: what it authored in the store (messages,
notes, events; its usage rows are kept for accounting, pseudonymised) and in
knowledge/ (the files skills name after it: `..._<YYYYMMDD>_<agent>.<ext>`). `plan_erase`
says what would go; `erase_agent` does it and leaves one audit record with
counts only (the store's `erase_agent_data`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path


def _file_suffix(agent: str) -> str:
    """How skills spell the agent in a file name (fleet.skills._common.agent_name)."""
    from fleet.skills._common import safe_name

    return "_" + safe_name(agent, 40)


def knowledge_files(cfg: dict, agent: str) -> list[Path]:
    """The files under knowledge/ the agent authored, as skills name them:
    the stem (the name without its last extension) ends with
    `_<YYYYMMDD>_<agent>` (fleet.skills._common.today and agent_name), so
    agent `a` does not claim `data_a.md`, nor `coder_1` `..._coder_11.md`.
    Symlinks are not followed and not counted (they are not its writing)."""
    root = Path(cfg["paths"]["knowledge"])
    if not root.is_dir():
        return []
    authored = re.compile(r"_\d{8}" + re.escape(_file_suffix(agent)) + r"$")
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            stem = name.rsplit(".", 1)[0] if "." in name else name
            if authored.search(stem):
                out.append(path)
    return sorted(out)


def make_pseudonym(agent: str) -> str:
    """A stand-in for the agent: a hash of its name under a random key that is
    kept nowhere, so the rows it marks stay grouped but cannot be traced back."""
    key = secrets.token_bytes(32)
    return "erased-" + hmac.new(key, agent.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]


def plan_erase(cfg: dict, store, agent: str) -> dict:
    """What `erase_agent` would do, changing nothing."""
    footprint = store.agent_footprint(agent)
    files = knowledge_files(cfg, agent)
    root = Path(cfg["paths"]["knowledge"])
    return {
        "agent": agent,
        "would_erase": {"messages": footprint["messages"], "notes": footprint["notes"],
                        "events": footprint["events"], "knowledge_files": len(files)},
        "would_pseudonymise": {"usage_rows": footprint["usage_rows"], "events_naming": footprint["events_naming"]},
        "files": [str(p.relative_to(root)) for p in files],
    }


def erase_agent(cfg: dict, store, agent: str, *, by: str = "operator") -> dict:
    """Delete the agent's knowledge files, then its store data in one
    transaction (usage rows pseudonymised, one `gdpr_erase` record with the
    counts). Files go first: if anything stops half-way, running it again
    erases the rest. Returns {"agent", "pseudonym", "counts", "audit_event_id"}."""
    removed = 0
    for path in knowledge_files(cfg, agent):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    out = store.erase_agent_data(agent, pseudonym=make_pseudonym(agent), by=by,
                                 extra_counts={"knowledge_files": removed})
    return {"agent": agent, **out}
