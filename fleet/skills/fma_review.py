"""fma_review skill: failure-mode analysis (FMEA) of a file or git diff by a model —
each failure mode with cause, effect, severity/likelihood/detection scores (1-10) and
a risk priority number — filed to knowledge/fma_reviews/<file>_review_<date>_<agent>.md
and summarised as a turn in the file's code discussion thread.
"""

from __future__ import annotations

from fleet.skills._codeinput import TARGET_PROPERTIES, load_target
from fleet.skills._common import (
    ModelOutputError,
    agent_name,
    atomic_write_text,
    knowledge_path,
    skill_options,
    today,
    utc_stamp,
)
from fleet.skills._llm import ask_model

DESCRIPTION = ("Failure-mode analysis of a file or git diff: failure modes with cause, effect, severity, "
               "likelihood, detection and risk priority; report in knowledge/fma_reviews/ plus a discussion turn.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = False  # each run adds a discussion turn
TIMEOUT_S = 900
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        **TARGET_PROPERTIES,
        "context": {"type": "string", "maxLength": 2000, "description": "how the code is used (load, environment)"},
        "discuss": {"type": "boolean", "description": "post a summary to the discussion thread (default true)"},
        "agent": {"type": "string", "maxLength": 64},
    },
    "oneOf": [{"required": ["path"]}, {"required": ["diff"]}],
    "additionalProperties": False,
}
_SCORE = {"type": "integer", "minimum": 1, "maximum": 10}
REPLY_SCHEMA = {
    "type": "object",
    "required": ["summary", "failure_modes"],
    "properties": {
        "summary": {"type": "string", "minLength": 1},
        "failure_modes": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["component", "failure_mode", "cause", "effect", "severity", "likelihood", "detection",
                         "mitigation"],
            "properties": {
                "component": {"type": "string", "minLength": 1}, "failure_mode": {"type": "string", "minLength": 1},
                "cause": {"type": "string"}, "effect": {"type": "string"}, "line": {"type": ["integer", "null"]},
                "severity": _SCORE, "likelihood": _SCORE, "detection": _SCORE, "mitigation": {"type": "string"},
            },
        }},
    },
}


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "code_review")
    target = load_target(payload, config, int(opts["max_input_chars"]))
    context = f"\nHow it is used: {payload['context']}\n" if payload.get("context") else ""
    prompt = (f"Do a failure mode and effects analysis (FMEA) of this {target['kind']}: {target['label']}.{context}\n"
              "For each way it can fail in production (bad input, resource exhaustion, concurrency, dependency "
              "failure, partial writes, crashes mid-operation, clock and ordering issues), give: component "
              "(function or class), failure_mode, cause, effect, line (or null), severity 1-10 (10 = data loss or "
              "outage), likelihood 1-10, detection 1-10 (10 = would go unnoticed), mitigation.\n"
              'Reply with one JSON object only: {"summary": "...", "failure_modes": [{...}]}\n\n'
              f"--- BEGIN ---\n{target['text']}\n--- END ---\n")
    reply = ask_model(prompt, config, skill="fma_review", json_schema=REPLY_SCHEMA, max_tokens=4096, temperature=0.1)
    data = reply.json if isinstance(reply.json, dict) else None
    if data is None:
        raise ModelOutputError("fma_review: the model's reply has no JSON analysis; nothing was filed")
    modes = []
    for m in data["failure_modes"]:
        modes.append({k: (m.get(k).strip() if isinstance(m.get(k), str) else m.get(k)) for k in
                      ("component", "failure_mode", "cause", "effect", "line", "severity", "likelihood", "detection",
                       "mitigation")})
        modes[-1]["rpn"] = m["severity"] * m["likelihood"] * m["detection"]
    modes.sort(key=lambda m: -m["rpn"])
    agent = agent_name(payload, config)
    lines = [f"# Failure-mode analysis: {target['label']}", "",
             f"- Analysed: {utc_stamp()} by {agent} with {reply.provider}/{reply.model}",
             f"- Failure modes: {len(modes)}; highest risk priority number (RPN = S x L x D, max 1000): {modes[0]['rpn']}",
             "", "## Summary", "", data["summary"].strip(), "", "## Failure modes (highest RPN first)", "",
             "| # | RPN | S | L | D | Component | Failure mode | Line |", "|---|---|---|---|---|---|---|---|"]
    for i, m in enumerate(modes, 1):
        lines.append(f"| {i} | {m['rpn']} | {m['severity']} | {m['likelihood']} | {m['detection']} | "
                     f"{m['component'].replace('|', '/')} | {m['failure_mode'].replace('|', '/')} | {m['line'] or ''} |")
    for i, m in enumerate(modes, 1):
        lines += ["", f"### {i}. {m['failure_mode']} ({m['component']})", "", f"- Cause: {m['cause']}",
                  f"- Effect: {m['effect']}", f"- Mitigation: {m['mitigation']}"]
    if target["truncated"]:
        lines += ["", "Note: the input was cut at the size limit; the rest was not analysed."]
    path = knowledge_path(config, "fma_reviews", f"{target['name']}_review_{today()}_{agent}.md")
    atomic_write_text(path, "\n".join(lines) + "\n")
    result = {"target": target["label"], "report": str(path), "summary": data["summary"].strip(),
              "failure_modes": modes, "max_rpn": modes[0]["rpn"], "model": reply.model, "provider": reply.provider}
    if payload.get("discuss", True):
        from fleet.db import shared_store
        from fleet.skills.code_discuss import post_turn, write_transcript

        thread = f"fma_{target['name']}"[:80]
        top = "; ".join(f"{m['failure_mode']} (RPN {m['rpn']})" for m in modes[:3])
        store = shared_store(config)
        post_turn(store, thread, agent, f"FMA of {target['label']}: {data['summary'].strip()} Top risks: {top}. "
                  f"Full report: {path.name}", persona="critic", model=reply.model)
        result["discussion"] = {"thread": thread, "transcript": write_transcript(config, store, thread)}
    log.info("fma_review of %s: %d failure modes, max RPN %d", target["label"], len(modes), result["max_rpn"])
    return result
