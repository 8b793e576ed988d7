"""security_review skill: static security scan of a Python tree with bandit plus a
secrets scan of its text files (keys, tokens, private keys; values masked in every
output), written to knowledge/security/reviews/security_review_<date>.md. No model.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

from fleet.skills._common import (
    CHECKER_BATCH,
    MAX_SOURCE_BYTES,
    TEXT_EXTENSIONS,
    SkillError,
    atomic_write_json,
    atomic_write_text,
    display_path,
    iter_files,
    knowledge_path,
    looks_binary,
    resolve_input,
    today,
    utc_stamp,
)

DESCRIPTION = ("Static security review of a Python file or tree: bandit findings (vulnerabilities) plus a "
               "scan for committed or leaked secrets (masked); report in knowledge/security/reviews/.")
REQUIRES_MODEL = False
REQUIRES_NETWORK = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 600
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "file or folder to scan (relative to the fleet home)"},
        "min_severity": {"enum": ["low", "medium", "high"], "description": "lowest bandit severity reported"},
        "secrets": {"type": "boolean", "description": "also scan text files for secrets (default true)"},
        "top": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "required": ["path"],
    "additionalProperties": False,
}

_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}
# (rule, pattern, group holding the secret). Patterns follow the providers' documented key formats.
SECRET_RULES = [
    ("aws_access_key_id", re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b"), 1),
    ("private_key", re.compile(r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY(?: BLOCK)?-----)"), 1),
    ("github_token", re.compile(r"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,})\b"), 1),
    ("github_fine_grained_token", re.compile(r"\b(github_pat_[A-Za-z0-9_]{60,})\b"), 1),
    ("anthropic_api_key", re.compile(r"\b(sk-ant-[A-Za-z0-9_-]{20,})"), 1),
    ("openai_api_key", re.compile(r"\b(sk-(?:proj-)?[A-Za-z0-9_-]{32,})"), 1),
    ("slack_token", re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]{10,})"), 1),
    ("google_api_key", re.compile(r"\b(AIza[0-9A-Za-z_-]{35})\b"), 1),
    ("stripe_secret_key", re.compile(r"\b((?:sk|rk)_live_[0-9A-Za-z]{20,})"), 1),
    ("generic_secret_assignment", re.compile(
        r"""(?i)\b[\w.-]*(?:api[_-]?key|secret|token|passw(?:or)?d|credential)[\w.-]*\s*[:=]\s*["']([^"'\s]{12,})["']"""), 1),
]


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    counts = {c: s.count(c) for c in set(s)}
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def mask(secret: str) -> str:
    return f"{secret[:4]}…{secret[-2:]} ({len(secret)} chars)" if len(secret) > 8 else "****"


def scan_secrets(files: list[Path], config: dict) -> list[dict]:
    """Findings with file, line, rule and a masked preview; the secret itself is never kept."""
    findings = []
    for path in files:
        if looks_binary(path):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if len(line) > 4000:
                continue
            for rule, pattern, group in SECRET_RULES:
                for m in pattern.finditer(line):
                    value = m.group(group)
                    if rule == "generic_secret_assignment":
                        # skip placeholders, env-var names, lookups and low-entropy words
                        if (entropy(value) < 3.5 or not re.search(r"\d", value) or not re.search(r"[A-Za-z]", value)
                                or re.fullmatch(r"[A-Z0-9_]+", value)
                                or re.fullmatch(r"[<{$%].*|.*(?:example|placeholder|your|xxxx).*", value, re.IGNORECASE)):
                            continue
                    findings.append({"file": display_path(config, path), "line": lineno, "rule": rule,
                                     "masked": mask(value)})
                    break
    return findings


def run_bandit(files: list[Path], min_severity: str, log) -> dict:
    """Bandit's findings for exactly these files (CHECKER_BATCH per run)."""
    raw: dict = {"results": [], "metrics": {}, "errors": []}
    for start in range(0, len(files), CHECKER_BATCH):
        cmd = [sys.executable, "-m", "bandit", "-f", "json", "-q", "--severity-level", min_severity,
               "--", *map(str, files[start:start + CHECKER_BATCH])]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=540, check=False)  # nosec B603
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"available": False, "error": f"bandit could not run: {exc}", "findings": [], "scanned": 0}
        try:
            part = json.loads(proc.stdout)
        except json.JSONDecodeError:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            hint = " (install it: pip install bandit)" if "No module named bandit" in proc.stderr else ""
            return {"available": False, "error": f"bandit exited {proc.returncode}: "
                                                 f"{err[-1] if err else 'no output'}{hint}", "findings": [], "scanned": 0}
        raw["results"] += part.get("results", [])
        raw["errors"] += part.get("errors", [])
        metrics = part.get("metrics") or {}
        totals = raw["metrics"].setdefault("_totals", {"loc": 0, "nosec": 0})
        for key in ("loc", "nosec"):
            totals[key] += int((metrics.get("_totals") or {}).get(key) or 0)
        raw["metrics"].update({k: v for k, v in metrics.items() if k != "_totals"})
    findings = [{
        "file": r.get("filename"), "line": r.get("line_number"), "test_id": r.get("test_id"),
        "test_name": r.get("test_name"), "severity": (r.get("issue_severity") or "").lower(),
        "confidence": (r.get("issue_confidence") or "").lower(), "message": r.get("issue_text"),
        "cwe": (r.get("issue_cwe") or {}).get("id"),
    } for r in raw.get("results", [])]
    totals = (raw.get("metrics") or {}).get("_totals") or {}
    scanned = sum(1 for k in (raw.get("metrics") or {}) if k != "_totals")
    errors = [f"{e.get('filename')}: {e.get('reason')}" for e in raw.get("errors", [])]
    log.info("bandit: %d findings in %d files", len(findings), scanned)
    return {"available": True, "error": None, "findings": findings, "scanned": scanned,
            "loc": totals.get("loc"), "skipped_nosec": totals.get("nosec"), "errors": errors}


def run(payload: dict, config: dict, log) -> dict:
    target = resolve_input(config, payload["path"])
    min_sev = payload.get("min_severity", "low")
    top = int(payload.get("top") or 100)
    py_files = iter_files(target, {".py"}, max_bytes=MAX_SOURCE_BYTES)
    text_files = iter_files(target, TEXT_EXTENSIONS | {".env", ".pem", ".key", ".conf"}, max_bytes=MAX_SOURCE_BYTES)
    if target.is_dir() and not text_files:
        raise SkillError(f"{payload['path']!r} holds no files to scan")
    bandit = run_bandit(py_files, min_sev, log) if py_files else {
        "available": True, "error": None, "findings": [], "scanned": 0, "errors": []}
    for f in bandit["findings"]:
        f["file"] = display_path(config, Path(f["file"])) if f["file"] else f["file"]
    bandit["findings"].sort(key=lambda f: (-_SEVERITY_RANK.get(f["severity"], 0), f["file"] or "", f["line"] or 0))
    secrets = scan_secrets(text_files, config) if payload.get("secrets", True) else []
    by_sev: dict[str, int] = {}
    for f in bandit["findings"]:
        by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
    summary = {"python_files": len(py_files), "files_scanned_for_secrets": len(text_files) if payload.get("secrets", True) else 0,
               "bandit_findings": len(bandit["findings"]), "by_severity": by_sev, "secrets_found": len(secrets),
               "bandit_available": bandit["available"], "bandit_error": bandit["error"]}
    out_md = knowledge_path(config, "security", "reviews", f"security_review_{today()}.md")
    out_json = out_md.with_suffix(".json")
    detail = {"target": display_path(config, target), "generated": utc_stamp(), "min_severity": min_sev,
              "summary": summary, "bandit": bandit, "secrets": secrets}
    atomic_write_json(out_json, detail)
    atomic_write_text(out_md, _markdown(detail, top))
    return {"report": str(out_md), "data": str(out_json), "summary": summary,
            "findings": bandit["findings"][:top], "secrets": secrets[:top]}


def _markdown(d: dict, top: int) -> str:
    s, b = d["summary"], d["bandit"]
    lines = [f"# Security review: {d['target']}", "", f"Generated {d['generated']} by the security_review skill "
             "(bandit + secrets scan, no model). Secret values are masked.", "", "## Summary", "",
             f"- Python files: {s['python_files']}; bandit findings (severity >= {d['min_severity']}): {s['bandit_findings']} "
             + (", ".join(f"{k}: {v}" for k, v in sorted(s["by_severity"].items())) or ""),
             f"- Possible secrets: {s['secrets_found']} in {s['files_scanned_for_secrets']} files scanned"]
    if not b["available"]:
        lines.append(f"- Bandit did not run: {b['error']}")
    for err in b.get("errors") or []:
        lines.append(f"- Bandit could not scan {err}")
    lines += ["", f"## Bandit findings ({len(b['findings'])})", ""]
    lines += [f"- **{f['severity']}** ({f['confidence']} confidence) {f['file']}:{f['line']} {f['test_id']} "
              f"{f['test_name']}: {f['message']}" + (f" (CWE-{f['cwe']})" if f.get("cwe") else "")
              for f in b["findings"][:top]] or ["- none"]
    lines += ["", f"## Possible secrets ({len(d['secrets'])})", ""]
    lines += [f"- {f['file']}:{f['line']} {f['rule']}: {f['masked']}" for f in d["secrets"][:top]] or ["- none"]
    if d["secrets"]:
        lines += ["", "Rotate any real key found here and move it to the secrets file "
                  "(`lead_client.py secret set KEY -`); never commit it."]
    return "\n".join(lines) + "\n"
