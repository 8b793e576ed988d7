"""flashcard skill: a model writes question/answer study cards from a document; cards
are parsed strictly, de-duplicated and saved to knowledge/flashcards/ as JSON and as a
tab-separated file that Anki and similar tools import.
"""

from __future__ import annotations

from fleet.skills._common import (
    ModelOutputError,
    agent_name,
    atomic_write_json,
    atomic_write_text,
    knowledge_path,
    read_documents,
    safe_name,
    skill_options,
    today,
    utc_stamp,
)
from fleet.skills._llm import ask_model

DESCRIPTION = "Question/answer flashcards from a document or folder, saved to knowledge/flashcards/ (JSON + TSV)."
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 600
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "count": {"type": "integer", "minimum": 1, "maximum": 100},
        "focus": {"type": "string", "maxLength": 500},
        "agent": {"type": "string", "maxLength": 64},
    },
    "required": ["path"],
    "additionalProperties": False,
}
REPLY_SCHEMA = {
    "type": "object",
    "required": ["cards"],
    "properties": {"cards": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["question", "answer"],
        "properties": {"question": {"type": "string", "minLength": 3}, "answer": {"type": "string", "minLength": 1}},
    }}},
}


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "summarize")
    docs = read_documents(config, payload["path"], max_chars=min(60000, int(opts["max_input_chars"])))
    text = "\n\n".join(d["text"] for d in docs)
    count = int(payload.get("count") or 10)
    focus = f"Concentrate on: {payload['focus']}\n" if payload.get("focus") else ""
    prompt = (f"Write {count} flashcards for studying the text below. Each card: one clear question and a short, "
              f"correct answer taken from the text (no outside facts). Cover the most important ideas, no two cards "
              f"asking the same thing.\n{focus}"
              'Reply with one JSON object only: {"cards": [{"question": "...", "answer": "..."}]}\n\n'
              f"--- TEXT ---\n{text}\n--- END ---\n")
    reply = ask_model(prompt, config, skill="flashcard", json_schema=REPLY_SCHEMA, max_tokens=3000, temperature=0.2)
    if not isinstance(reply.json, dict):
        raise ModelOutputError("flashcard: the model's reply has no JSON cards; nothing was written")
    cards, seen = [], set()
    for c in reply.json["cards"]:
        q, a = " ".join(c["question"].split()), " ".join(c["answer"].split())
        if q.lower() in seen or not a:
            continue
        seen.add(q.lower())
        cards.append({"question": q, "answer": a})
    cards = cards[:count]
    if not cards:
        raise ModelOutputError("flashcard: the model's cards were all empty or duplicates; nothing was written")
    agent = agent_name(payload, config)
    base = knowledge_path(config, "flashcards", f"{safe_name(docs[0]['name'] if len(docs) == 1 else payload['path'], 60)}"
                                                f"_cards_{today()}_{agent}")
    json_path, tsv_path = base.with_suffix(".json"), base.with_suffix(".tsv")
    atomic_write_json(json_path, {"source": [d["name"] for d in docs], "created": utc_stamp(), "model": reply.model,
                                  "cards": cards})
    atomic_write_text(tsv_path, "".join(f"{c['question'].replace(chr(9), ' ')}\t{c['answer'].replace(chr(9), ' ')}\n"
                                        for c in cards))
    log.info("flashcard: %d cards from %s", len(cards), payload["path"])
    return {"cards": cards, "count": len(cards), "json": str(json_path), "tsv": str(tsv_path),
            "sources": [d["name"] for d in docs], "model": reply.model, "provider": reply.provider}
