"""rag_index skill: build or refresh the full-text retrieval index (SQLite FTS5, in
knowledge/rag.db) over knowledge/ and any given paths, chunked and incremental by
file hash. No model needed.
"""

from __future__ import annotations

from fleet.rag import RagError, RagIndex, index_path
from fleet.skills._common import (
    TEXT_EXTENSIONS,
    SkillError,
    is_sensitive,
    iter_files,
    knowledge_root,
    resolve_input,
    skill_options,
)

DESCRIPTION = ("Index text files (knowledge/ and given paths) into a SQLite FTS5 full-text index, "
               "chunked and incremental by file hash, for rag_query.")
REQUIRES_MODEL = False
REQUIRES_NETWORK = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 900
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 100,
                  "description": "files or folders to index besides knowledge/"},
        "include_knowledge": {"type": "boolean", "description": "also index knowledge/ (default true)"},
        "extensions": {"type": "array", "items": {"type": "string", "pattern": "^\\.[A-Za-z0-9]+$"},
                       "description": "file suffixes to index (default: common text and code files)"},
        "chunk_chars": {"type": "integer", "minimum": 200, "maximum": 20000},
    },
    "additionalProperties": False,
}


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "rag")
    chunk_chars = int(payload.get("chunk_chars") or opts["chunk_chars"])
    overlap = int(opts["overlap_lines"])
    max_bytes = int(opts["max_file_bytes"])
    exts = set(payload.get("extensions") or opts["extensions"] or TEXT_EXTENSIONS)
    roots = []
    if payload.get("include_knowledge", True):
        roots.append(knowledge_root(config))
    roots += [resolve_input(config, p) for p in payload.get("paths", [])]
    if not roots:
        raise SkillError("nothing to index: give paths, or leave include_knowledge true")
    db = index_path(config)
    totals: dict = {"roots": []}
    try:
        with RagIndex(db) as index:
            for root in roots:
                files = [f for f in iter_files(root, exts) if f.resolve() != db.resolve()
                         and not f.name.startswith(db.name) and ".pending" not in f.parts
                         and not is_sensitive(config, f)]
                stats = index.index_files(str(root), files, chunk_chars=chunk_chars, overlap_lines=overlap,
                                          max_file_bytes=max_bytes)
                log.info("rag_index %s: %s", root, {k: v for k, v in stats.items() if k != "skipped_files"})
                totals["roots"].append({"root": str(root), **stats})
            index.checkpoint()
            totals["index"] = index.stats()
    except RagError as exc:
        raise SkillError(str(exc)) from None
    for key in ("files_seen", "indexed", "unchanged", "removed", "skipped", "chunks_added"):
        totals[key] = sum(r[key] for r in totals["roots"])
    return totals
