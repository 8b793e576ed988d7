"""code_quality skill: static metrics of a Python tree without any model — cyclomatic
complexity and function length (from the AST), missing docstrings, and lint findings
from ruff — written to knowledge/quality/reviews/quality_review_<date>.md.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from fleet.skills._common import (
    CHECKER_BATCH,
    MAX_SOURCE_BYTES,
    SkillError,
    atomic_write_json,
    atomic_write_text,
    display_path,
    iter_files,
    knowledge_path,
    resolve_input,
    skill_options,
    today,
    utc_stamp,
)

DESCRIPTION = ("Static quality metrics of a Python file or tree: cyclomatic complexity, long functions, "
               "missing docstrings and ruff lint findings; report in knowledge/quality/reviews/.")
REQUIRES_MODEL = False
REQUIRES_NETWORK = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 300
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "Python file or folder (relative to the fleet home)"},
        "max_complexity": {"type": "integer", "minimum": 1, "description": "flag functions above this complexity"},
        "max_function_lines": {"type": "integer", "minimum": 1, "description": "flag functions longer than this"},
        "lint": {"type": "boolean", "description": "run ruff (default true)"},
        "top": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "findings listed per section"},
    },
    "required": ["path"],
    "additionalProperties": False,
}


def complexity(func: ast.AST) -> int:
    """McCabe-style cyclomatic complexity of one function (nested functions not counted)."""
    score = 1
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler)):
            score += 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.match_case) or isinstance(node, ast.Assert):
            score += 1
        stack.extend(ast.iter_child_nodes(node))
    return score


def analyse_file(path: Path, shown: str) -> dict:
    """Functions (with qualified name, line, length, complexity, docstring) and module facts."""
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:  # vanished or unreadable since it was listed
        return {"file": shown, "syntax_error": f"cannot read: {exc.strerror or exc}", "functions": [],
                "classes": [], "lines": 0, "module_docstring": False}
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return {"file": shown, "syntax_error": f"line {exc.lineno}: {exc.msg}", "functions": [], "classes": [],
                "lines": source.count("\n") + 1, "module_docstring": False}
    functions, classes = [], []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{child.name}"
                functions.append({
                    "name": qual, "line": child.lineno,
                    "lines": (child.end_lineno or child.lineno) - child.lineno + 1,
                    "complexity": complexity(child),
                    "docstring": ast.get_docstring(child) is not None,
                    "public": not child.name.startswith("_") and "._" not in f".{prefix}",
                })
                walk(child, qual + ".")
            elif isinstance(child, ast.ClassDef):
                qual = f"{prefix}{child.name}"
                classes.append({"name": qual, "line": child.lineno, "docstring": ast.get_docstring(child) is not None,
                                "public": not child.name.startswith("_")})
                walk(child, qual + ".")
    walk(tree, "")
    return {"file": shown, "functions": functions, "classes": classes, "lines": source.count("\n") + 1,
            "module_docstring": ast.get_docstring(tree) is not None}


def run_ruff(files: list[Path], log) -> dict:
    """Ruff's JSON findings for exactly these files (CHECKER_BATCH per run),
    or an error saying why it could not run."""
    raw: list = []
    for start in range(0, len(files), CHECKER_BATCH):
        cmd = [sys.executable, "-m", "ruff", "check", "--output-format", "json", "--no-cache", "--exit-zero",
               "--", *map(str, files[start:start + CHECKER_BATCH])]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)  # nosec B603
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"available": False, "error": f"ruff could not run: {exc}", "findings": []}
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            hint = " (install it: pip install ruff)" if "No module named ruff" in proc.stderr else ""
            return {"available": False, "error": f"ruff exited {proc.returncode}: {err[-1] if err else ''}{hint}",
                    "findings": []}
        try:
            raw += json.loads(proc.stdout or "[]")
        except json.JSONDecodeError as exc:
            return {"available": False, "error": f"ruff printed output that is not JSON: {exc}", "findings": []}
    findings = [{
        "file": item.get("filename"), "line": (item.get("location") or {}).get("row"),
        "column": (item.get("location") or {}).get("column"), "code": item.get("code"),
        "message": item.get("message"),
    } for item in raw]
    log.info("ruff: %d findings", len(findings))
    return {"available": True, "error": None, "findings": findings}


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "code_quality")
    max_cx = int(payload.get("max_complexity") or opts["max_complexity"])
    max_len = int(payload.get("max_function_lines") or opts["max_function_lines"])
    top = int(payload.get("top") or 50)
    target = resolve_input(config, payload["path"])
    files = iter_files(target, {".py"}, max_bytes=MAX_SOURCE_BYTES)
    if not files:
        raise SkillError(f"no Python files under {payload['path']!r}; give a .py file or a folder holding some")
    log.info("code_quality: %d Python files under %s", len(files), target)
    reports = [analyse_file(p, display_path(config, p)) for p in files]
    funcs = [dict(f, file=r["file"]) for r in reports for f in r["functions"]]
    complex_ = sorted((f for f in funcs if f["complexity"] > max_cx), key=lambda f: -f["complexity"])
    long_ = sorted((f for f in funcs if f["lines"] > max_len), key=lambda f: -f["lines"])
    missing = [{"file": r["file"], "line": 1, "name": "(module)"} for r in reports if not r["module_docstring"]]
    for r in reports:
        missing += [{"file": r["file"], "line": c["line"], "name": c["name"]}
                    for c in r["classes"] if c["public"] and not c["docstring"]]
        missing += [{"file": r["file"], "line": f["line"], "name": f["name"]}
                    for f in r["functions"] if f["public"] and not f["docstring"]]
    lint = run_ruff(files, log) if payload.get("lint", True) else {"available": False, "error": "skipped (lint=false)", "findings": []}
    for f in lint["findings"]:
        if f["file"]:
            f["file"] = display_path(config, Path(f["file"]))
    by_code: dict[str, int] = {}
    for f in lint["findings"]:
        by_code[f["code"] or "?"] = by_code.get(f["code"] or "?", 0) + 1
    cx_values = [f["complexity"] for f in funcs]
    summary = {
        "files": len(files), "lines": sum(r["lines"] for r in reports), "functions": len(funcs),
        "classes": sum(len(r["classes"]) for r in reports),
        "mean_complexity": round(sum(cx_values) / len(cx_values), 2) if cx_values else 0.0,
        "max_complexity": max(cx_values, default=0),
        "complex_functions": len(complex_), "long_functions": len(long_),
        "missing_docstrings": len(missing), "lint_findings": len(lint["findings"]),
        "syntax_errors": [{"file": r["file"], "error": r["syntax_error"]} for r in reports if "syntax_error" in r],
    }
    out_md = knowledge_path(config, "quality", "reviews", f"quality_review_{today()}.md")
    out_json = out_md.with_suffix(".json")
    detail = {"target": display_path(config, target), "generated": utc_stamp(), "thresholds":
              {"max_complexity": max_cx, "max_function_lines": max_len}, "summary": summary,
              "complex_functions": complex_, "long_functions": long_, "missing_docstrings": missing,
              "lint": {"available": lint["available"], "error": lint["error"], "by_code": by_code,
                       "findings": lint["findings"]}, "functions": funcs}
    atomic_write_json(out_json, detail)
    atomic_write_text(out_md, _markdown(detail, top))
    return {
        "report": str(out_md), "data": str(out_json), "summary": summary,
        "complex_functions": complex_[:top], "long_functions": long_[:top],
        "missing_docstrings": missing[:top], "lint": {"available": lint["available"], "error": lint["error"],
                                                      "by_code": by_code, "findings": lint["findings"][:top]},
    }


def _markdown(d: dict, top: int) -> str:
    s = d["summary"]
    lines = [f"# Code quality review: {d['target']}", "", f"Generated {d['generated']} by the code_quality skill "
             "(static analysis, no model).", "", "## Summary", "",
             f"- Files: {s['files']}, lines: {s['lines']}, functions: {s['functions']}, classes: {s['classes']}",
             f"- Complexity: mean {s['mean_complexity']}, max {s['max_complexity']}; "
             f"{s['complex_functions']} above {d['thresholds']['max_complexity']}",
             f"- Functions longer than {d['thresholds']['max_function_lines']} lines: {s['long_functions']}",
             f"- Missing docstrings (public): {s['missing_docstrings']}",
             f"- Lint findings (ruff): {s['lint_findings']}" + ("" if d["lint"]["available"] else f" — {d['lint']['error']}")]
    for err in s["syntax_errors"]:
        lines.append(f"- Syntax error in {err['file']}: {err['error']}")
    sections = [
        ("Most complex functions", d["complex_functions"], lambda f: f"{f['file']}:{f['line']} `{f['name']}` complexity {f['complexity']}"),
        ("Longest functions", d["long_functions"], lambda f: f"{f['file']}:{f['line']} `{f['name']}` {f['lines']} lines"),
        ("Missing docstrings", d["missing_docstrings"], lambda f: f"{f['file']}:{f['line']} `{f['name']}`"),
        ("Lint findings", d["lint"]["findings"], lambda f: f"{f['file']}:{f['line']}:{f['column']} {f['code']} {f['message']}"),
    ]
    for title, items, fmt in sections:
        lines += ["", f"## {title} ({len(items)})", ""]
        lines += [f"- {fmt(i)}" for i in items[:top]] or ["- none"]
        if len(items) > top:
            lines.append(f"- … {len(items) - top} more in the JSON data file")
    if d["lint"]["by_code"]:
        lines += ["", "## Lint findings by rule", ""]
        lines += [f"- {code}: {n}" for code, n in sorted(d["lint"]["by_code"].items(), key=lambda kv: -kv[1])]
    return "\n".join(lines) + "\n"
