"""What the code and knowledge skills produced, where those skills exist:
/api/reviews (recent code and FMA reviews with their finding counts),
/api/discussions (code discussion threads), /api/code_stats (code index and
review statistics) and /api/rag (the retrieval index's size).
"""

from __future__ import annotations

import json
import os
import time

from flask import Blueprint, jsonify

from .common import ctx, doc, int_arg

REVIEW_SKILLS = ("code_review", "fma_review")
DISCUSS_SKILL = "code_discuss"
DISCUSS_CHANNEL = "pool"
DISCUSS_PREFIX = "discussion:"
CODE_INDEX = "code_index.jsonl"


def _rel_report(c, path) -> str | None:
    """A report path relative to knowledge/ (for /api/knowledge/file), or None."""
    if not isinstance(path, str):
        return None
    root = os.path.realpath(c.cfg["paths"]["knowledge"])
    full = os.path.realpath(path)
    return os.path.relpath(full, root).replace(os.sep, "/") if full.startswith(root + os.sep) else None


def review_rows(c, limit: int) -> list[dict]:
    rows = []
    for skill in REVIEW_SKILLS:
        if skill not in c.catalogue():
            continue
        for t in c.store.list_tasks(skill=skill, status="DONE", limit=limit).items:
            r = t.result if isinstance(t.result, dict) else {}
            rows.append({"task_id": t.id, "skill": skill, "finished_at": t.finished_at, "worker": t.worker,
                         "target": r.get("target") or r.get("name"), "summary": (r.get("summary") or "")[:500],
                         "counts": r.get("counts"), "filed": r.get("filed", bool(r.get("report"))),
                         "report": _rel_report(c, r.get("report"))})
    rows.sort(key=lambda x: x["finished_at"] or 0, reverse=True)
    return rows[:limit]


def _code_index_stats(c) -> dict | None:
    path = os.path.join(c.cfg["paths"]["knowledge"], CODE_INDEX)
    if not os.path.isfile(path):
        return None
    kinds: dict[str, int] = {}
    files: set[str] = set()
    bad = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            kinds[str(rec.get("kind"))] = kinds.get(str(rec.get("kind")), 0) + 1
            if rec.get("file"):
                files.add(rec["file"])
    return {"path": CODE_INDEX, "symbols": sum(kinds.values()), "files": len(files), "by_kind": kinds,
            "unreadable_lines": bad, "modified_at": os.path.getmtime(path)}


def install(app, c) -> None:
    bp = Blueprint("knowledge_skills", __name__)
    catalogue = c.catalogue()
    has_reviews = any(s in catalogue for s in REVIEW_SKILLS)

    if has_reviews:
        @bp.get("/api/reviews")
        @doc("Recent code and FMA reviews: target, summary, finding counts by severity, report file", tag="knowledge",
             query={"limit": {"type": "integer", "minimum": 1, "maximum": 200}})
        def reviews():
            return jsonify({"reviews": review_rows(ctx(), int_arg("limit", 20, lo=1, hi=200))})

    if DISCUSS_SKILL in catalogue:
        @bp.get("/api/discussions")
        @doc("Code discussion threads (turns, participants, last activity) and discussion tasks still open",
             tag="knowledge", query={"limit": {"type": "integer", "minimum": 1, "maximum": 5000,
                                               "description": "how many recent messages to group"}})
        def discussions():
            c = ctx()
            threads: dict[str, dict] = {}
            for m in c.store.messages(channel=DISCUSS_CHANNEL, limit=int_arg("limit", 1000, lo=1, hi=5000)):
                if not str(m["recipient"]).startswith(DISCUSS_PREFIX):
                    continue
                name = m["recipient"][len(DISCUSS_PREFIX):]
                th = threads.setdefault(name, {"thread": name, "turns": 0, "authors": [], "started_at": m["created_at"]})
                th["turns"] += 1
                th["last_at"] = m["created_at"]
                th["last_author"] = m["sender"]
                if m["sender"] not in th["authors"]:
                    th["authors"].append(m["sender"])
            open_tasks = c.store.list_tasks(skill=DISCUSS_SKILL, status=["PENDING", "RUNNING", "WAITING_HUMAN"],
                                            limit=100)
            active = sorted(threads.values(), key=lambda t: t["last_at"], reverse=True)
            return jsonify({"threads": active, "open_tasks": [{"id": t.id, "status": t.status,
                                                               "thread": t.payload.get("thread")}
                                                              for t in open_tasks.items]})

    if "code_index" in catalogue or has_reviews:
        @bp.get("/api/code_stats")
        @doc("Code index statistics (symbols, files, kinds) and review totals with findings by severity "
             "over a window", tag="knowledge",
             query={"days": {"type": "integer", "minimum": 1, "maximum": 365}})
        def code_stats():
            c = ctx()
            days = int_arg("days", 30, lo=1, hi=365)
            since = time.time() - days * 86400
            totals: dict[str, dict] = {}
            for skill in REVIEW_SKILLS:
                if skill not in c.catalogue():
                    continue
                page = c.store.list_tasks(skill=skill, since=since, limit=1000)
                entry = {"tasks": page.total, "done": 0, "failed": 0, "findings": {}}
                for t in page.items:  # the newest 1000 in the window
                    key = {"DONE": "done", "FAILED": "failed"}.get(t.status, "other")
                    entry[key] = entry.get(key, 0) + 1
                    counts = (t.result or {}).get("counts") if isinstance(t.result, dict) else None
                    for sev, n in (counts or {}).items():
                        if isinstance(n, int):
                            entry["findings"][sev] = entry["findings"].get(sev, 0) + n
                totals[skill] = entry
            return jsonify({"days": days, "code_index": _code_index_stats(c), "reviews": totals})

    from fleet import rag

    @bp.get("/api/rag")
    @doc("Retrieval index statistics: indexed files, chunks and size (absent until rag_index has run)",
         tag="knowledge")
    def rag_stats():
        c = ctx()
        path = rag.index_path(c.cfg)
        if not path.exists():  # never create the index just to describe it
            return jsonify({"exists": False, "path": path.name, "files": 0, "chunks": 0, "bytes": 0})
        idx = rag.RagIndex(path)
        try:
            stats = idx.stats()
        finally:
            idx.close()
        return jsonify({"exists": True, **stats, "path": path.name})

    app.register_blueprint(bp)
