"""code_discuss skill: agents (and people) add turns to a discussion thread about code.
Each turn is a message in the fleet store (channel "pool", recipient
"discussion:<thread>"); the whole thread is mirrored to
knowledge/code_discussion/<thread>.md after every turn.
"""

from __future__ import annotations

import json

from fleet.skills._common import (
    SkillError,
    agent_name,
    atomic_write_text,
    clip,
    knowledge_path,
    read_text,
    resolve_input,
    safe_name,
    utc_stamp,
)
from fleet.skills._llm import ask_model

DESCRIPTION = ("Add a turn to a code discussion thread (a person's message and/or a model reply in a persona: "
               "architect, critic, performance, security, maintainer); stored in messages and "
               "knowledge/code_discussion/<thread>.md.")
REQUIRES_MODEL = True  # unless reply=false (then it only records the given message)
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = False  # a retried run may add a second turn
TIMEOUT_S = 600
PERSONAS = {
    "architect": "a software architect: structure, boundaries, coupling, how the design will age",
    "critic": "a sceptical reviewer: what is wrong, risky or unproven in the code and in the thread so far",
    "performance": "a performance engineer: cost, hot paths, memory, I/O, scaling limits",
    "security": "a security engineer: attack surface, trust boundaries, secrets, injection",
    "maintainer": "the maintainer: what to change now, what to defer, concrete next steps",
}
CHANNEL = "pool"
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "thread": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"},
        "path": {"type": "string", "minLength": 1, "description": "file under discussion (context for the model)"},
        "message": {"type": "string", "minLength": 1, "maxLength": 20000, "description": "a turn to add first"},
        "author": {"type": "string", "maxLength": 64, "description": "who wrote `message` (default: operator)"},
        "persona": {"enum": ["architect", "critic", "performance", "security", "maintainer"]},
        "reply": {"type": "boolean", "description": "add a model turn (default true)"},
        "agent": {"type": "string", "maxLength": 64},
    },
    "required": ["thread"],
    "additionalProperties": False,
}


def recipient(thread: str) -> str:
    return f"discussion:{thread}"


def history(store, thread: str) -> list[dict]:
    """The thread's turns, oldest first."""
    turns = []
    for m in store.inbox(recipient(thread), unread_only=False, channel=CHANNEL, limit=1000):
        try:
            body = json.loads(m["body"])
        except (TypeError, ValueError):
            body = {"text": m["body"]}
        if not isinstance(body, dict):
            body = {"text": str(body)}
        turns.append({"id": m["id"], "author": m["sender"], "at": m["created_at"], **body})
    return turns


def post_turn(store, thread: str, author: str, text: str, **extra) -> int:
    return store.send_message(author, recipient(thread), {"thread": thread, "text": text, **extra}, channel=CHANNEL)


def write_transcript(config: dict, store, thread: str) -> str:
    import datetime as dt

    turns = history(store, thread)
    lines = [f"# Code discussion: {thread}", "", f"{len(turns)} turns; updated {utc_stamp()}.", ""]
    for t in turns:
        when = dt.datetime.fromtimestamp(t["at"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        who = t["author"] + (f" ({t['persona']})" if t.get("persona") else "")
        about = f" — on {t['path']}" if t.get("path") else ""
        lines += [f"## {who}, {when}{about}", "", t.get("text", ""), ""]
    path = knowledge_path(config, "code_discussion", f"{safe_name(thread)}.md")
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")
    return str(path)


def _next_persona(turns: list[dict]) -> str:
    used = [t.get("persona") for t in turns if t.get("persona")]
    order = list(PERSONAS)
    return order[(order.index(used[-1]) + 1) % len(order)] if used and used[-1] in order else order[0]


def run(payload: dict, config: dict, log) -> dict:
    from fleet.db import shared_store

    thread = payload["thread"]
    want_reply = payload.get("reply", True)
    if not want_reply and not payload.get("message"):
        raise SkillError("code_discuss: nothing to add; give a message, or leave reply true for a model turn")
    code, shown = "", None
    if payload.get("path"):
        path = resolve_input(config, payload["path"])
        code, truncated = read_text(path, 30000)
        shown = payload["path"] + (" (cut at 30000 characters)" if truncated else "")
    store = shared_store(config)
    added = []
    if payload.get("message"):
        added.append(post_turn(store, thread, payload.get("author") or "operator", payload["message"],
                               **({"path": payload["path"]} if payload.get("path") else {})))
    turns = history(store, thread)
    if want_reply:
        persona = payload.get("persona") or _next_persona(turns)
        agent = agent_name(payload, config)
        transcript = "\n\n".join(f"{t['author']}{' (' + t['persona'] + ')' if t.get('persona') else ''}: "
                                 f"{clip(t.get('text', ''), 4000)}" for t in turns[-20:]) or "(no turns yet)"
        prompt = (f"You are {PERSONAS[persona]}, taking part in a written discussion about code with other "
                  f"engineers. Add the next turn: respond to what was said, be specific (name functions and "
                  f"lines), disagree where warranted, at most 250 words. No greeting, no sign-off.\n\n"
                  + (f"Code under discussion ({shown}):\n---\n{code}\n---\n\n" if code else "")
                  + f"Thread '{thread}' so far:\n{transcript}\n\nYour turn:")
        reply = ask_model(prompt, config, skill="code_discuss", max_tokens=700)
        text = reply.text.strip()
        if not text:
            raise SkillError("code_discuss: the model returned an empty turn; nothing was added (retry)")
        added.append(post_turn(store, thread, agent, text, persona=persona, model=reply.model,
                               **({"path": payload["path"]} if payload.get("path") else {})))
        log.info("code_discuss %s: %s (%s) added a turn", thread, agent, persona)
    transcript_path = write_transcript(config, store, thread)
    turns = history(store, thread)
    last = turns[-1]
    return {"thread": thread, "added_message_ids": added, "turns": len(turns), "transcript": transcript_path,
            "last_turn": {"author": last["author"], "persona": last.get("persona"), "text": last.get("text")}}
