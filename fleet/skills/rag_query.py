"""rag_query skill: ranked chunks from the FTS5 retrieval index with their sources
(file and line range); when asked and a model is reachable, also an answer that
cites those chunks by number.
"""

from __future__ import annotations

import re

from fleet.rag import RagError, RagIndex, index_path
from fleet.skills._common import SkillError, clip
from fleet.skills._llm import ModelUnavailable, ask_model

DESCRIPTION = ("Search the rag_index full-text index: ranked chunks with sources; optionally an answer "
               "from a model that cites them.")
REQUIRES_MODEL = False
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 300
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 2000},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        "answer": {"type": "boolean", "description": "ask a model for an answer citing the chunks (default false)"},
        "path_prefix": {"type": "string", "description": "only chunks of files under this absolute path"},
    },
    "required": ["query"],
    "additionalProperties": False,
}


def run(payload: dict, config: dict, log) -> dict:
    db = index_path(config)
    if not db.exists():
        raise SkillError(f"no retrieval index at {db}; run the rag_index skill first")
    try:
        with RagIndex(db) as index:
            hits, mode = index.search(payload["query"], limit=int(payload.get("limit") or 8),
                                      path_prefix=payload.get("path_prefix"))
    except RagError as exc:
        raise SkillError(str(exc)) from None
    chunks = [{"rank": i + 1, "source": h["path"], "start_line": h["start_line"], "end_line": h["end_line"],
               "score": h["score"], "snippet": h["snippet"], "text": h["text"]} for i, h in enumerate(hits)]
    result = {"query": payload["query"], "match": mode, "chunks": chunks, "count": len(chunks)}
    if not payload.get("answer"):
        return result
    if not chunks:
        result.update(answer=None, answer_error="no indexed text matches the query, so there is nothing to answer from")
        return result
    context = "\n\n".join(f"[{c['rank']}] {c['source']} lines {c['start_line']}-{c['end_line']}:\n{clip(c['text'], 3000)}"
                          for c in chunks)
    prompt = (f"Answer the question using only the numbered sources below. Cite every claim with the source "
              f"number in square brackets, like [1]. If the sources do not contain the answer, say so.\n\n"
              f"Question: {payload['query']}\n\nSources:\n{context}\n\nAnswer:")
    try:
        reply = ask_model(prompt, config, skill="rag_query", max_tokens=800)
    except ModelUnavailable as exc:
        result.update(answer=None, answer_error=str(exc))
        log.warning("rag_query: no answer, model unavailable: %s", exc)
        return result
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", reply.text) if 1 <= int(n) <= len(chunks)})
    result.update(answer=reply.text.strip(), cited=cited, model=reply.model, provider=reply.provider)
    return result
