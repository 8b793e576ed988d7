"""summarize skill: a summary of a file, a folder of text files or a URL (URL only when
the network is allowed), by a model — long text in chunks, then combined — or, when no
model is reachable, by extractive sentence ranking (result says "method": "extractive").
Written to knowledge/summaries/.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from fleet.skills._common import (
    SkillError,
    agent_name,
    atomic_write_text,
    knowledge_path,
    read_documents,
    safe_name,
    skill_options,
    today,
    utc_stamp,
)
from fleet.skills._llm import ModelUnavailable, ask_model
from fleet.skills._models import ModelContextOverflow

DESCRIPTION = ("Summarise a file, a folder of text files or a URL (network allowed only); uses a model, "
               "falling back to extractive summarising when none is reachable. Saved in knowledge/summaries/.")
REQUIRES_MODEL = False  # a real extractive method exists when no model is reachable
REQUIRES_NETWORK = False  # only for `url`, refused in offline mode
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 900
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "file or folder (relative to the fleet home)"},
        "url": {"type": "string", "pattern": "^https?://", "description": "web page (refused in offline mode)"},
        "focus": {"type": "string", "maxLength": 500, "description": "what the summary should concentrate on"},
        "max_words": {"type": "integer", "minimum": 20, "maximum": 2000},
        "method": {"enum": ["auto", "model", "extractive"], "description": "auto: model, else extractive"},
        "save": {"type": "boolean"},
    },
    "oneOf": [{"required": ["path"]}, {"required": ["url"]}],
    "additionalProperties": False,
}
_STOP = set(["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "may", "more", "most", "no", "not", "of", "on", "or", "our", "she", "so", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "while", "who", "will", "with", "would", "you", "your"])


# -- extractive ----------------------------------------------------------------
def split_sentences(text: str) -> list[str]:
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)  # code blocks are not prose
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n\s*\n", text)
    return [" ".join(p.split()) for p in parts if len(p.split()) >= 5]


def extractive_summary(text: str, n_sentences: int, focus: str | None = None) -> list[str]:
    """Top sentences by the average document frequency of their content words
    (words of `focus` weigh triple), returned in their original order."""
    sentences = split_sentences(text)
    if not sentences:
        return []
    words_of = [[w for w in re.findall(r"[a-z0-9']+", s.lower()) if w not in _STOP and len(w) > 2] for s in sentences]
    freq = Counter(w for ws in words_of for w in set(ws))
    focus_words = {w for w in re.findall(r"[a-z0-9']+", (focus or "").lower()) if w not in _STOP}
    scores = []
    for i, ws in enumerate(words_of):
        if not ws:
            scores.append(0.0)
            continue
        score = sum(freq[w] * (3 if w in focus_words else 1) for w in ws) / math.sqrt(len(ws))
        scores.append(score * (1.15 if i == 0 else 1.0))  # a document's opening sentence is usually a thesis
    best = sorted(range(len(sentences)), key=lambda i: -scores[i])[:n_sentences]
    return [sentences[i] for i in sorted(best)]


# -- model ---------------------------------------------------------------------
def _chunks(text: str, size: int) -> list[str]:
    out, buf = [], ""
    for para in re.split(r"(\n\s*\n)", text):
        if len(buf) + len(para) > size and buf.strip():
            out.append(buf)
            buf = ""
        while len(para) > size:
            out.append(para[:size])
            para = para[size:]
        buf += para
    if buf.strip():
        out.append(buf)
    return out


def model_summary(text: str, config: dict, *, focus: str | None, max_words: int, opts: dict, log) -> dict:
    chunk_chars, max_chunks = int(opts["chunk_chars"]), int(opts["max_chunks"])
    focus_line = f"Concentrate on: {focus}\n" if focus else ""
    pieces = _chunks(text, chunk_chars)
    left_out = max(0, len(pieces) - max_chunks)
    pieces = pieces[:max_chunks]
    model = None
    if len(pieces) > 1:
        partials = []
        for i, piece in enumerate(pieces, 1):
            reply = ask_model(f"Summarise part {i} of {len(pieces)} of a document in at most 150 words. Keep facts, "
                              f"names and numbers exact; do not add anything.\n{focus_line}\n---\n{piece}\n---\nSummary:",
                              config, skill="summarize", max_tokens=400)
            partials.append(reply.text.strip())
            model = reply
            log.info("summarize: part %d/%d done", i, len(pieces))
        text_for_final = "\n\n".join(f"Part {i}: {p}" for i, p in enumerate(partials, 1))
        instruction = "Combine these summaries of consecutive parts of one document into a single summary"
    else:
        text_for_final, instruction = pieces[0], "Summarise this document"
    reply = ask_model(f"{instruction} of at most {max_words} words. Keep facts, names and numbers exact; do not add "
                      f"anything that is not in the text.\n{focus_line}\n---\n{text_for_final}\n---\nSummary:",
                      config, skill="summarize", max_tokens=max(256, max_words * 2))
    summary = reply.text.strip()
    if not summary:
        raise SkillError("summarize: the model returned an empty summary; nothing was written (retry or try another model)")
    model = reply
    return {"summary": summary, "chunks": len(pieces), "chunks_left_out": left_out,
            "model": getattr(model, "model", None), "provider": getattr(model, "provider", None)}


def _fitting_chunk_chars(context_tokens: int | None, max_words: int, current: int) -> int | None:
    """A chunk size (characters) whose prompt fits a context of
    `context_tokens` (about 3 characters a token, with room for the
    instructions and the reply), or None when it would not be smaller."""
    if not context_tokens:
        return None
    room = context_tokens - max(256, max_words * 2) - 120
    size = max(200, room * 3)
    return size if size < current else None


def summary_by_model(text: str, config: dict, *, focus: str | None, max_words: int, opts: dict, log) -> dict:
    """model_summary, and when the text overflows every provider's context,
    once more in chunks sized to the largest context reported. Raises
    ModelContextOverflow when even that does not fit."""
    try:
        return model_summary(text, config, focus=focus, max_words=max_words, opts=opts, log=log)
    except ModelContextOverflow as exc:
        smaller = _fitting_chunk_chars(exc.context_tokens, max_words, int(opts["chunk_chars"]))
        if smaller is None:
            raise
        log.warning("summarize: the text overflows the model's context (%s tokens); chunking it in %d characters",
                    exc.context_tokens, smaller)
        return dict(model_summary(text, config, focus=focus, max_words=max_words,
                                  opts=dict(opts, chunk_chars=smaller), log=log), rechunked_for_context=smaller)


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "summarize")
    max_chars = int(opts["max_input_chars"])
    max_words = int(payload.get("max_words") or 200)
    if payload.get("url"):
        from fleet.skills._web import fetch_text

        page = fetch_text(config, "summarize", payload["url"], max_chars=max_chars)
        docs = [{"name": page["url"], "text": page["text"], "truncated": page["truncated"], "title": page["title"]}]
        label = page["title"] or payload["url"]
    else:
        docs = read_documents(config, payload["path"], max_chars=max_chars)
        label = payload["path"]
    text = "\n\n".join(f"# {d['name']}\n\n{d['text']}" if len(docs) > 1 else d["text"] for d in docs)
    if not text.strip():
        raise SkillError(f"summarize: {label!r} has no text to summarise")
    method = payload.get("method", "auto")
    result = {"source": label, "documents": [d["name"] for d in docs], "input_chars": len(text),
              "input_truncated": any(d["truncated"] for d in docs)}
    if method in ("auto", "model"):
        try:
            result.update(summary_by_model(text, config, focus=payload.get("focus"), max_words=max_words,
                                           opts=opts, log=log))
            result["method"] = "model"
        except ModelContextOverflow as exc:
            if method == "model":
                raise SkillError(f"summarize: {exc}") from None
            log.warning("summarize: the text does not fit any model's context, using extractive summarising: %s",
                        exc)
            result["model_error"] = str(exc)
        except ModelUnavailable as exc:
            if method == "model":
                raise
            log.warning("summarize: no model reachable, using extractive summarising: %s", exc)
            result["model_error"] = str(exc)
    if "method" not in result:
        sentences = extractive_summary(text, int(opts["extractive_sentences"]), payload.get("focus"))
        if not sentences:
            raise SkillError(f"summarize: {label!r} has no prose sentences to extract (and no model was used)")
        result.update(method="extractive", summary=" ".join(sentences), sentences=len(sentences))
    if payload.get("save", True):
        path = knowledge_path(config, "summaries", f"{safe_name(label, 60)}_summary_{today()}_{agent_name(payload, config)}.md")
        meta = f"method: {result['method']}" + (f", model: {result.get('model')}" if result.get("model") else "")
        atomic_write_text(path, f"# Summary: {label}\n\nGenerated {utc_stamp()} ({meta}).\n"
                                f"Sources: {', '.join(result['documents'])}\n\n{result['summary']}\n")
        result["saved_to"] = str(path)
    return result
