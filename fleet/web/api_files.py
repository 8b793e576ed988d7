"""File endpoints: the knowledge inventory and reading one artifact (never
outside the knowledge directory), and the tail of each process's log.
"""

from __future__ import annotations

import os
import re

from flask import Blueprint, jsonify, request

from fleet.logs import tail_lines

from .common import ApiError, ctx, doc, int_arg

bp = Blueprint("files", __name__)
MAX_READ_BYTES = 1 << 20
MAX_LIST = 5000
LOG_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _inside(root: str, rel: str) -> str:
    """The real path of `rel` under `root`, or a 400/404 (no traversal, no escaping links)."""
    if not rel or "\x00" in rel or len(rel) > 1000:
        raise ApiError(400, "give the file's path relative to the knowledge directory")
    if os.path.isabs(rel) or any(part == ".." for part in re.split(r"[\\/]", rel)):
        raise ApiError(400, "the path must be relative to the knowledge directory, without '..'")
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath([real_root, full]) != real_root:
        raise ApiError(400, "that path leads outside the knowledge directory")
    if not os.path.isfile(full):
        raise ApiError(404, f"no knowledge file {rel!r}; see /api/knowledge for the list")
    return full


def _log_file(root: str, file_name: str) -> str | None:
    """The real path of a log file inside the logs folder, or None: a link that
    leads out of the folder (or to something that is not a file) is not a log."""
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, file_name))
    if os.path.dirname(full) != real_root or not os.path.isfile(full):
        return None
    return full


@bp.get("/api/knowledge")
@doc("Knowledge artifact inventory: every file skills wrote under knowledge/ (path, size, modified)",
     tag="files")
def knowledge():
    root = ctx().cfg["paths"]["knowledge"]
    files, total = [], 0
    if os.path.isdir(root):
        real_root = os.path.realpath(root)
        for dirpath, dirnames, filenames in os.walk(real_root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                total += st.st_size
                if len(files) < MAX_LIST:
                    files.append({"path": os.path.relpath(full, real_root).replace(os.sep, "/"),
                                  "bytes": st.st_size, "modified_at": st.st_mtime})
    by_dir: dict[str, int] = {}
    for f in files:
        top = f["path"].split("/", 1)[0] if "/" in f["path"] else "."
        by_dir[top] = by_dir.get(top, 0) + 1
    return jsonify({"root": "knowledge", "files": files, "count": len(files), "bytes": total,
                    "by_directory": by_dir, "truncated": len(files) >= MAX_LIST})


@bp.get("/api/knowledge/file")
@doc("Read one knowledge file (text, at most 1 MiB)", tag="files",
     query={"path": {"type": "string", "minLength": 1, "maxLength": 1000, "required": True,
                     "description": "path relative to knowledge/"}},
     responses={"400": "bad or escaping path", "404": "no such file", "415": "not a text file"})
def knowledge_file():
    rel = request.args.get("path", "")
    full = _inside(ctx().cfg["paths"]["knowledge"], rel)
    with open(full, "rb") as fh:
        data = fh.read(MAX_READ_BYTES + 1)
    truncated = len(data) > MAX_READ_BYTES
    try:
        text = data[:MAX_READ_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(415, f"{rel} is not UTF-8 text; open it from the fleet home instead") from None
    return jsonify({"path": rel, "bytes": os.path.getsize(full), "truncated": truncated, "content": text})


@bp.get("/api/logs")
@doc("Log files of the fleet's processes (name, size, modified, kind): each process's log, and its "
     "crash output (`<name>.out`: what it wrote to stdout/stderr, a traceback that killed it)", tag="files")
def logs():
    root = ctx().cfg["paths"]["logs"]
    out = []
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            full = _log_file(root, name) if name.endswith((".log", ".out")) else None
            if full is not None:
                st = os.stat(full)
                log = name.endswith(".log")
                out.append({"name": name[:-4] if log else name, "file": name, "kind": "log" if log else "crash output",
                            "bytes": st.st_size, "modified_at": st.st_mtime})
    return jsonify({"logs": out})


@bp.get("/api/logs/<name>")
@doc("The last lines of one process's log", tag="files",
     path={"name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$"}},
     query={"lines": {"type": "integer", "minimum": 1, "maximum": 5000}},
     responses={"404": "no such log"})
def log_tail(name: str):
    if not LOG_NAME.match(name) or name.startswith("."):
        raise ApiError(400, "a log name is letters, digits, '_', '-' and '.' (like 'supervisor')")
    root = ctx().cfg["paths"]["logs"]
    path = _log_file(root, name if name.endswith((".log", ".out")) else f"{name}.log")
    if path is None:
        raise ApiError(404, f"no log named {name!r}; see /api/logs")
    lines = int_arg("lines", 200, lo=1, hi=5000)
    return jsonify({"name": name, "lines": tail_lines(path, lines, max_bytes=8 * MAX_READ_BYTES)})


def install(app, c) -> None:
    app.register_blueprint(bp)
