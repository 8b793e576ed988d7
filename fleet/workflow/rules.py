"""Learned deterministic rules: regex patterns over a diff's added lines, one
JSON file per repository under the fleet home (workflow_rules/). A proposed
rule is kept only if it fires on a failing diff (one the review rejected or a
gate failed) and not on the accepted one; kept rules run after Execute and in
the Gates, with no model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from fleet.atomic import atomic_write_text


def rules_file(cfg: dict, repo: str) -> Path:
    key = hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:16]
    return Path(cfg["home"]) / "workflow_rules" / f"{key}.json"


def load(cfg: dict, repo: str) -> list[dict]:
    path = rules_file(cfg, repo)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in data.get("rules", []) if isinstance(r, dict)]


def _save(cfg: dict, repo: str, rules: list[dict]) -> None:
    path = rules_file(cfg, repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"repo": os.path.realpath(repo), "rules": rules}, indent=2))


def added_lines(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def fires(rule: dict, diff: str) -> list[str]:
    """The added lines of `diff` the rule's pattern matches."""
    try:
        pattern = re.compile(rule["pattern"])
    except (re.error, KeyError, TypeError):
        return []
    return [line for line in added_lines(diff) if pattern.search(line)]


def vet_and_keep(cfg: dict, repo: str, proposed: list[dict], *, failing: list[str], accepted: str,
                 workflow_id: int) -> list[dict]:
    """Keep each proposed rule that fires on a failing diff and not on the
    accepted one; return a verdict per proposal ({name, kept, why})."""
    rules = load(cfg, repo)
    verdicts = []
    failing = [d for d in failing if d.strip()]
    for rule in proposed:
        name = str(rule.get("name") or "rule")[:80]
        pattern = rule.get("pattern")
        try:
            re.compile(str(pattern))
        except re.error as exc:
            verdicts.append({"name": name, "kept": False, "why": f"not a valid regex: {exc}"})
            continue
        candidate = {"name": name, "pattern": str(pattern), "message": str(rule.get("message") or name)[:500]}
        if not any(fires(candidate, d) for d in failing):
            verdicts.append({"name": name, "kept": False, "why": "does not fire on the failing diff"})
            continue
        if fires(candidate, accepted):
            verdicts.append({"name": name, "kept": False, "why": "fires on the accepted diff"})
            continue
        if any(r["pattern"] == candidate["pattern"] for r in rules):
            verdicts.append({"name": name, "kept": False, "why": "already kept"})
            continue
        candidate.update({"id": max([r.get("id", 0) for r in rules] + [0]) + 1, "workflow_id": workflow_id,
                          "created_at": time.time()})
        rules.append(candidate)
        verdicts.append({"name": name, "kept": True, "why": "fires on the failing diff, not on the accepted one"})
    if any(v["kept"] for v in verdicts):
        _save(cfg, repo, rules)
    return verdicts


def delete(cfg: dict, repo: str, rule_id: int) -> bool:
    rules = load(cfg, repo)
    kept = [r for r in rules if r.get("id") != rule_id]
    if len(kept) == len(rules):
        return False
    _save(cfg, repo, kept)
    return True


def gate(rules: list[dict], diff: str) -> dict | None:
    """The learned-rules gate over `diff`: None when there are no rules."""
    if not rules:
        return None
    hits = []
    for rule in rules:
        for line in fires(rule, diff):
            hits.append(f"rule {rule.get('id')} ({rule['name']}): {rule['message']}\n    + {line.strip()}")
    return {"name": "rules", "command": f"{len(rules)} learned rule(s)", "ok": not hits, "returncode": None,
            "output": "\n".join(hits) or "no learned rule fired"}
