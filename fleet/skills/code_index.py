"""code_index skill: an AST index of the Python files under a path (modules,
classes, functions, methods with signatures, docstrings and line numbers) kept in
knowledge/code_index.jsonl, incremental by file hash. No model needed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

from filelock import FileLock

from fleet.skills._common import MAX_SOURCE_BYTES, SkillError, atomic_write_text, iter_files, resolve_input

DESCRIPTION = ("Index Python source under a path: modules, classes, functions and methods with "
               "signatures, docstrings and line numbers, into knowledge/code_index.jsonl (incremental).")
REQUIRES_NETWORK = False
REQUIRES_MODEL = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 900
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1,
                 "description": "file or folder to index (relative paths are under the fleet home)"},
        "max_files": {"type": "integer", "minimum": 1, "maximum": 200000},
        "docstring_chars": {"type": "integer", "minimum": 0, "maximum": 20000},
    },
    "required": ["path"],
    "additionalProperties": False,
}
INDEX_NAME = "code_index.jsonl"


class CodeIndexError(SkillError):
    retryable = False  # bad input: running it again will not help


def _python_files(root: Path, limit: int) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix == ".py" else []
    out = iter_files(root, {".py"}, max_files=limit + 1, max_bytes=MAX_SOURCE_BYTES)
    if len(out) > limit:
        raise CodeIndexError(f"more than {limit} Python files under {root}; index a smaller folder or raise max_files")
    return out


def _signature(node) -> str:
    args = ast.unparse(node.args)
    ret = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({args}){ret}"


def _doc(node, limit: int) -> str | None:
    doc = ast.get_docstring(node)
    if doc is None:
        return None
    return doc if len(doc) <= limit else doc[:limit] + "..."


def symbols_of(source: str, filename: str, doc_chars: int = 2000) -> list[dict]:
    """Every module, class, function and method of one file (raises SyntaxError)."""
    tree = ast.parse(source, filename=filename)
    out = [{"kind": "module", "name": Path(filename).stem, "qualname": Path(filename).stem,
            "lineno": 1, "end_lineno": len(source.splitlines()) or 1, "docstring": _doc(tree, doc_chars)}]

    def visit(body, prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "method" if in_class else "function"
                out.append({"kind": kind, "name": node.name, "qualname": prefix + node.name,
                            "signature": _signature(node), "async": isinstance(node, ast.AsyncFunctionDef),
                            "decorators": [ast.unparse(d) for d in node.decorator_list],
                            "lineno": node.lineno, "end_lineno": node.end_lineno,
                            "docstring": _doc(node, doc_chars)})
                visit(node.body, f"{prefix}{node.name}.<locals>.", False)
            elif isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
                out.append({"kind": "class", "name": node.name, "qualname": prefix + node.name,
                            "signature": f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}",
                            "decorators": [ast.unparse(d) for d in node.decorator_list],
                            "lineno": node.lineno, "end_lineno": node.end_lineno,
                            "docstring": _doc(node, doc_chars)})
                visit(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith)):
                for part in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, part, []) or [], prefix, in_class)
            elif isinstance(node, ast.ExceptHandler):
                visit(node.body, prefix, in_class)

    visit(tree.body, "", False)
    return out


def _load_index(path: Path) -> dict[str, list[dict]]:
    by_file: dict[str, list[dict]] = {}
    if not path.exists():
        return by_file
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a damaged line is rebuilt from the source on this run
            if isinstance(rec, dict) and isinstance(rec.get("file"), str):
                by_file.setdefault(rec["file"], []).append(rec)
    return by_file


def _write_index(path: Path, by_file: dict[str, list[dict]]) -> None:
    lines = [json.dumps(rec, ensure_ascii=False) + "\n" for file in sorted(by_file) for rec in by_file[file]]
    atomic_write_text(path, "".join(lines))


def run(payload: dict, config: dict, log) -> dict:
    root = resolve_input(config, payload["path"])
    files = _python_files(root, int(payload.get("max_files", 20000)))
    doc_chars = int(payload.get("docstring_chars", 2000))
    out_path = Path(config["paths"]["knowledge"]) / INDEX_NAME
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # One index file for every root: two runs at once would each write back
    # the index as they read it, and the later one lose the other's files.
    with FileLock(str(out_path) + ".lock", timeout=TIMEOUT_S):
        return _index_into(out_path, root, files, doc_chars, log)


def _index_into(out_path: Path, root: Path, files: list[Path], doc_chars: int, log) -> dict:
    index = _load_index(out_path)
    seen: set[str] = set()
    parsed = unchanged = 0
    errors: list[dict] = []
    for f in files:
        key = str(f)
        seen.add(key)
        try:
            data = f.read_bytes()
        except OSError as exc:
            errors.append({"file": key, "error": str(exc)})
            index.pop(key, None)
            continue
        digest = hashlib.sha256(data).hexdigest()
        old = index.get(key)
        if old and all(r.get("file_sha256") == digest for r in old):
            unchanged += 1
            continue
        try:
            syms = symbols_of(data.decode("utf-8", errors="replace"), key, doc_chars)
        except (SyntaxError, ValueError) as exc:
            errors.append({"file": key, "error": f"{type(exc).__name__}: {exc}"})
            index.pop(key, None)
            continue
        rel = os.path.relpath(f, root) if root.is_dir() else f.name
        index[key] = [{"file": key, "path": rel, "file_sha256": digest, **s} for s in syms]
        parsed += 1
    prefix = str(root) + os.sep
    removed = [k for k in index if (k == str(root) or k.startswith(prefix)) and k not in seen]
    for k in removed:
        del index[k]
    _write_index(out_path, index)
    total = sum(len(v) for k, v in index.items() if k in seen)
    log.info("indexed %s: %d files (%d parsed, %d unchanged, %d removed), %d symbols, %d errors",
             root, len(files), parsed, unchanged, len(removed), total, len(errors))
    return {"root": str(root), "output": str(out_path), "files": len(files), "parsed": parsed,
            "unchanged": unchanged, "removed": len(removed), "symbols": total, "errors": errors[:50]}
