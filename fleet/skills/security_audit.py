"""security_audit skill: a repository audit in one report, no model. bandit
and the masked secrets scan (both from security_review), dependency pins
(unpinned or wildcard requirements in requirements*.txt and pyproject.toml),
world-writable files, executable scripts that hold secrets, and optionally
pip-audit when it is installed. Every finding has a severity; the result
ends with a severity summary (`summary.by_severity`, `summary.worst`) the
dashboard and the operator can show, and the report goes to
knowledge/security/audits/security_audit_<date>.md (+ .json).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

from fleet.skills._common import (
    MAX_SOURCE_BYTES,
    TEXT_EXTENSIONS,
    SkillError,
    atomic_write_json,
    atomic_write_text,
    display_path,
    iter_files,
    knowledge_path,
    read_text,
    resolve_input,
    today,
    utc_stamp,
)
from fleet.skills.security_review import run_bandit, scan_secrets

DESCRIPTION = ("Audit a whole repository in one report: static analysis, masked secrets, unpinned or "
               "wildcard dependency pins, world-writable files, executable scripts holding secrets, and "
               "pip-audit when installed; a severity summary; report in knowledge/security/audits/.")
REQUIRES_MODEL = False
REQUIRES_NETWORK = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 900
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "the repository folder (relative to the fleet home)"},
        "min_severity": {"enum": ["low", "medium", "high"],
                         "description": "lowest severity of static-analysis findings reported"},
        "pip_audit": {"type": "boolean", "description": "run pip-audit on the requirements when it is installed "
                                                        "(default true; it needs its own local advisory data)"},
        "top": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "required": ["path"],
    "additionalProperties": False,
}

SEVERITIES = ("critical", "high", "medium", "low")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


# -- dependency pins -----------------------------------------------------------
def judge_requirement(line: str) -> tuple[str, str] | None:
    """(severity, why) for one requirement that is not pinned well, or None.
    Unpinned (no version at all) and wildcard (`==1.*`, `*`) are medium; a
    lower bound alone (`>=1.2`: any future major release) is low."""
    text = line.split("#", 1)[0].split(";", 1)[0].strip()
    if not text or text.startswith(("-", "git+", "http:", "https:", "file:", ".", "/")) or " @ " in text:
        return None  # options, includes, URLs and paths are not version pins
    m = _REQ_NAME.match(text)
    if m is None:
        return None
    spec = m.group(3).replace(" ", "")
    if not spec:
        return "medium", "unpinned: any version will be installed"
    if "*" in spec:
        return "medium", f"wildcard version {spec}"
    if not any(op in spec for op in ("==", "<", "~=", "===")):
        return "low", f"lower bound only ({spec}): a future major release is accepted"
    return None


def dependency_findings(root: Path, config: dict) -> list[dict]:
    out = []
    files = [p for p in iter_files(root, {".txt"}) if p.name.startswith("requirements")] if root.is_dir() else []
    for path in files:
        text, _ = read_text(path, MAX_SOURCE_BYTES)
        for lineno, line in enumerate(text.splitlines(), 1):
            verdict = judge_requirement(line)
            if verdict:
                out.append({"check": "dependency_pin", "severity": verdict[0], "file": display_path(config, path),
                            "line": lineno, "message": f"{line.strip()}: {verdict[1]}"})
    pyproject = root / "pyproject.toml"
    if root.is_dir() and pyproject.is_file():
        try:
            doc = tomllib.loads(read_text(pyproject, MAX_SOURCE_BYTES)[0])
        except tomllib.TOMLDecodeError as exc:
            out.append({"check": "dependency_pin", "severity": "low", "file": display_path(config, pyproject),
                        "line": None, "message": f"pyproject.toml does not parse ({exc}); its pins were not checked"})
            doc = {}
        project = doc.get("project") or {}
        groups = {"dependencies": project.get("dependencies") or []}
        groups |= {f"optional-dependencies.{k}": v for k, v in (project.get("optional-dependencies") or {}).items()}
        for group, reqs in groups.items():
            for req in reqs if isinstance(reqs, list) else []:
                verdict = judge_requirement(str(req))
                if verdict:
                    out.append({"check": "dependency_pin", "severity": verdict[0],
                                "file": display_path(config, pyproject), "line": None,
                                "message": f"[project] {group}: {req}: {verdict[1]}"})
    return out


# -- file modes ---------------------------------------------------------------
def mode_findings(files: list[Path], secrets: list[dict], config: dict) -> list[dict]:
    """World-writable files (anyone on the machine can change them: high),
    and executable scripts that hold a secret (a key that runs: critical)."""
    holding = {s["file"] for s in secrets}
    out = []
    for path in files:
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            continue
        name = display_path(config, path)
        if mode & stat.S_IWOTH:
            out.append({"check": "world_writable", "severity": "high", "file": name, "line": None,
                        "message": f"mode {stat.filemode(mode)}: any user can change it; chmod o-w {name}"})
        if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) and name in holding:
            out.append({"check": "executable_with_secret", "severity": "critical", "file": name, "line": None,
                        "message": "an executable script holds a secret: move it to the secrets file "
                                   "(`lead_client.py secret set KEY -`) and rotate it"})
    return out


# -- pip-audit (optional) ---------------------------------------------------------
def pip_audit(root: Path, config: dict, wanted: bool) -> dict:
    """pip-audit over requirements*.txt when it is installed and wanted: it
    needs its own advisory data (a local mirror or cache); without it the
    result says why it did not run, and the audit is complete without it."""
    exe = shutil.which("pip-audit")
    reqs = sorted(p for p in root.glob("requirements*.txt")) if root.is_dir() else []
    if not wanted:
        return {"ran": False, "why": "turned off (pip_audit = false)", "findings": []}
    if exe is None:
        return {"ran": False, "why": "pip-audit is not installed (optional: pip install pip-audit)", "findings": []}
    if not reqs:
        return {"ran": False, "why": "no requirements*.txt to audit", "findings": []}
    findings, errors = [], []
    for req in reqs:
        cmd = [exe, "-r", str(req), "--format", "json", "--progress-spinner", "off", "--no-deps", "--disable-pip"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,  # nosec B603
                                  env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")})
            doc = json.loads(proc.stdout or "{}")
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            errors.append(f"{req.name}: {exc}")
            continue
        for dep in doc.get("dependencies", []):
            for vuln in dep.get("vulns", []):
                fixed = ", ".join(vuln.get("fix_versions") or []) or "?"
                findings.append({"check": "pip_audit", "severity": "high", "file": display_path(config, req),
                                 "line": None, "message": f"{dep.get('name')} {dep.get('version')}: {vuln.get('id')} "
                                                          f"(fixed in {fixed})"})
        if proc.returncode not in (0, 1):
            errors.append(f"{req.name}: pip-audit exited {proc.returncode}: {(proc.stderr or '').strip()[-300:]}")
    return {"ran": True, "why": "; ".join(errors) or None, "findings": findings}


# -- the skill --------------------------------------------------------------------
def run(payload: dict, config: dict, log) -> dict:
    root = resolve_input(config, payload["path"])
    if not root.is_dir():
        raise SkillError(f"{payload['path']!r} is a file; give the repository folder to audit")
    top = int(payload.get("top") or 200)
    all_files = iter_files(root, max_bytes=MAX_SOURCE_BYTES)
    if not all_files:
        raise SkillError(f"{payload['path']!r} holds no files to audit")
    py_files = [p for p in all_files if p.suffix == ".py"]
    text_files = [p for p in all_files if p.suffix.lower() in TEXT_EXTENSIONS | {".env", ".pem", ".key", ".conf", ""}]
    bandit = run_bandit(py_files, payload.get("min_severity", "low"), log) if py_files else {
        "available": True, "error": None, "findings": [], "scanned": 0, "errors": []}
    findings = [{"check": "bandit", "severity": f["severity"], "file": display_path(config, Path(f["file"])),
                 "line": f["line"], "message": f"{f['test_id']} {f['test_name']}: {f['message']}"}
                for f in bandit["findings"]]
    secrets = scan_secrets(text_files, config)
    findings += [{"check": "secret", "severity": "high", "file": s["file"], "line": s["line"],
                  "message": f"{s['rule']}: {s['masked']}"} for s in secrets]
    findings += dependency_findings(root, config)
    findings += mode_findings(all_files, secrets, config)
    audit = pip_audit(root, config, payload.get("pip_audit", True))
    findings += audit["findings"]
    findings.sort(key=lambda f: (SEVERITIES.index(f["severity"]) if f["severity"] in SEVERITIES else 9,
                                 f["check"], f["file"] or "", f["line"] or 0))
    by_sev = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    by_check: dict[str, int] = {}
    for f in findings:
        by_check[f["check"]] = by_check.get(f["check"], 0) + 1
    summary = {"files": len(all_files), "python_files": len(py_files), "findings": len(findings),
               "by_severity": by_sev, "by_check": by_check,
               "worst": next((s for s in SEVERITIES if by_sev[s]), "none"),
               "bandit": "ran" if bandit["available"] else f"did not run: {bandit['error']}",
               "pip_audit": "ran" if audit["ran"] else f"did not run: {audit['why']}"}
    log.info("security_audit: %d findings (%s) in %d files", len(findings),
             ", ".join(f"{s} {n}" for s, n in by_sev.items() if n) or "none", len(all_files))
    out_md = knowledge_path(config, "security", "audits", f"security_audit_{today()}.md")
    detail = {"target": display_path(config, root), "generated": utc_stamp(), "summary": summary,
              "findings": findings, "pip_audit_note": audit["why"]}
    atomic_write_json(out_md.with_suffix(".json"), detail)
    atomic_write_text(out_md, _markdown(detail, top))
    return {"report": str(out_md), "data": str(out_md.with_suffix(".json")), "summary": summary,
            "findings": findings[:top]}


def _markdown(d: dict, top: int) -> str:
    s = d["summary"]
    lines = [f"# Security audit: {d['target']}", "",
             f"Generated {d['generated']} by the security_audit skill (no model). Secret values are masked.", "",
             "## Summary", "",
             "| severity | findings |", "| --- | ---: |",
             *[f"| {sev} | {n} |" for sev, n in s["by_severity"].items()], "",
             f"Worst: **{s['worst']}**. {s['files']} files, {s['python_files']} Python. Bandit {s['bandit']}; "
             f"pip-audit {s['pip_audit']}.", "",
             "By check: " + (", ".join(f"{k} {v}" for k, v in sorted(s["by_check"].items())) or "none"), "",
             f"## Findings ({len(d['findings'])})", ""]
    lines += [f"- **{f['severity']}** [{f['check']}] {f['file']}" + (f":{f['line']}" if f["line"] else "")
              + f": {f['message']}" for f in d["findings"][:top]] or ["- none"]
    if len(d["findings"]) > top:
        lines.append(f"- … {len(d['findings']) - top} more in the .json")
    return "\n".join(lines) + "\n"
