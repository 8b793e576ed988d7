"""synthesize skill: a model merges several knowledge documents into one document that
cites them by number; the numbered source list is appended by the skill (not the model)
and every citation is checked against it. Written to knowledge/syntheses/.
"""

from __future__ import annotations

import re

from fleet.skills._common import (
    ModelOutputError,
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
from fleet.skills._llm import ask_model

DESCRIPTION = ("Merge several documents (files or folders, e.g. from knowledge/) into one synthesis that cites "
               "its sources by number; saved in knowledge/syntheses/.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 900
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 50,
                  "description": "documents or folders to merge (at least two documents in all)"},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "question": {"type": "string", "maxLength": 2000, "description": "what the synthesis should answer"},
        "max_words": {"type": "integer", "minimum": 100, "maximum": 5000},
        "agent": {"type": "string", "maxLength": 64},
    },
    "required": ["paths", "title"],
    "additionalProperties": False,
}


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "summarize")
    budget = int(opts["max_input_chars"])
    docs: list[dict] = []
    for p in payload["paths"]:
        docs += read_documents(config, p, max_chars=max(2000, budget // max(1, len(payload["paths"]))))
    if len(docs) < 2:
        raise SkillError("synthesize needs at least two documents; give more paths (or a folder holding several)")
    per_doc = max(1500, budget // len(docs))
    sources = "\n\n".join(f"[{i}] {d['name']}\n---\n{d['text'][:per_doc]}\n---" for i, d in enumerate(docs, 1))
    max_words = int(payload.get("max_words") or 800)
    question = f"It must answer: {payload['question']}\n" if payload.get("question") else ""
    prompt = (f"Write one document titled '{payload['title']}' that merges the numbered sources below: combine what "
              f"they agree on, state where they disagree, drop repetition. {question}"
              f"Cite the source of every statement with its number in square brackets, e.g. [2] or [1][3]. Use only "
              f"the sources. Markdown, at most {max_words} words, no title line, no source list (it is added "
              f"for you).\n\nSources:\n{sources}\n")
    reply = ask_model(prompt, config, skill="synthesize", max_tokens=max(512, max_words * 2), temperature=0.2)
    body = reply.text.strip()
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", body)]
    unknown = sorted({n for n in cited if not 1 <= n <= len(docs)})
    if not body:
        raise ModelOutputError("synthesize: the model returned an empty document; nothing was written")
    if not cited:
        raise ModelOutputError("synthesize: the model's text cites none of the sources, so its claims cannot be "
                               "traced; nothing was written (retry, or use a stronger model)")
    if unknown:
        raise ModelOutputError(f"synthesize: the model cites sources that do not exist ({', '.join(map(str, unknown))}; "
                               f"there are {len(docs)}); nothing was written")
    used = sorted(set(cited))
    listing = "\n".join(f"{i}. {d['name']}" + ("" if i in used else " (not cited)") for i, d in enumerate(docs, 1))
    agent = agent_name(payload, config)
    path = knowledge_path(config, "syntheses", f"{safe_name(payload['title'], 60)}_{today()}_{agent}.md")
    atomic_write_text(path, f"# {payload['title']}\n\nSynthesised {utc_stamp()} by {agent} with "
                            f"{reply.provider}/{reply.model} from {len(docs)} sources.\n\n{body}\n\n## Sources\n\n{listing}\n")
    log.info("synthesize %r: %d sources, %d cited", payload["title"], len(docs), len(used))
    return {"title": payload["title"], "document": str(path), "sources": [d["name"] for d in docs], "cited": used,
            "uncited": [i for i in range(1, len(docs) + 1) if i not in used], "model": reply.model,
            "provider": reply.provider, "text": body}
