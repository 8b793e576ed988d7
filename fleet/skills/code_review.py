"""code_review skill: a model reviews one file or a git diff against a checklist
(correctness, errors, security, performance, clarity) and returns findings with
severities, filed to knowledge/code_reviews/<file>_review_<date>_<agent>.md. Reviews
with critical findings wait for a person's go-ahead before filing. Fails closed: a
reply that cannot be parsed is an error, never a pass.
"""

from __future__ import annotations

from fleet.skills._codeinput import TARGET_PROPERTIES, load_target
from fleet.skills._common import (
    APPROVE_WORDS,
    ModelOutputError,
    agent_name,
    answer_text,
    atomic_write_text,
    drop_stash,
    knowledge_path,
    load_stash,
    save_stash,
    skill_options,
    today,
    utc_stamp,
)
from fleet.skills._hitl import NeedsHuman
from fleet.skills._llm import ask_model

DESCRIPTION = ("Model code review of a file or git diff against a checklist (correctness, errors, security, "
               "performance, clarity); findings with severities in knowledge/code_reviews/. Critical findings "
               "are confirmed by a person before filing.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 900
CHECKLIST = {
    "correctness": "logic errors, wrong results, edge cases (empty, None, boundaries), broken invariants, races",
    "errors": "error handling: swallowed exceptions, missing cleanup, unclear messages, failure paths",
    "security": "injection, unsafe deserialisation, secrets in code, path traversal, missing auth checks",
    "performance": "needless work in loops, unbounded memory, blocking I/O in hot paths, N+1 queries",
    "clarity": "naming, structure, dead code, missing docs where behaviour is not obvious",
}
SEVERITIES = ("critical", "high", "medium", "low", "info")
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        **TARGET_PROPERTIES,
        "checklist": {"type": "array", "items": {"enum": ["correctness", "errors", "security", "performance", "clarity"]},
                      "minItems": 1, "uniqueItems": True},
        "focus": {"type": "string", "maxLength": 1000, "description": "extra instructions for the reviewer"},
        "agent": {"type": "string", "maxLength": 64},
        "confirm_critical": {"type": "boolean", "description": "ask a person before filing critical findings"},
        "human_answer": {"description": "set by the store when a person answers"},
        "human_question": {"type": ["string", "null"]},
    },
    "oneOf": [{"required": ["path"]}, {"required": ["diff"]}],
    "additionalProperties": False,
}
REPLY_SCHEMA = {
    "type": "object",
    "required": ["summary", "findings"],
    "properties": {
        "summary": {"type": "string", "minLength": 1},
        "findings": {"type": "array", "items": {
            "type": "object",
            "required": ["severity", "category", "title", "detail"],
            "properties": {
                "severity": {"enum": list(SEVERITIES)},
                "category": {"enum": list(CHECKLIST)},
                "line": {"type": ["integer", "null"]},
                "title": {"type": "string", "minLength": 1},
                "detail": {"type": "string"},
                "suggestion": {"type": "string"},
            },
        }},
    },
}
SYSTEM = ("You are a meticulous senior code reviewer. You report only real problems you can point to in the "
          "code shown, each with the line it is on. You never invent code that is not shown.")


def build_prompt(target: dict, checklist: list[str], focus: str | None) -> str:
    items = "\n".join(f"- {name}: {CHECKLIST[name]}" for name in checklist)
    what = "file (line numbers on the left)" if target["kind"] == "file" else "git diff"
    cut = "\nNote: the input was cut at the size limit; review what is shown.\n" if target["truncated"] else ""
    extra = f"\nAlso: {focus}\n" if focus else ""
    return (f"Review this {what}: {target['label']}\n\nChecklist:\n{items}\n{extra}{cut}\n"
            f"Severities: critical (data loss, security hole, crash in normal use), high (wrong results or likely "
            f"failure), medium (bug in an edge case, missing error handling), low (minor), info (style, notes).\n\n"
            f"Reply with one JSON object only, no prose around it:\n"
            f'{{"summary": "<2-4 sentences>", "findings": [{{"severity": "<{"|".join(SEVERITIES)}>", '
            f'"category": "<{"|".join(checklist)}>", "line": <line number or null>, "title": "<short>", '
            f'"detail": "<what is wrong and why>", "suggestion": "<how to fix>"}}]}}\n'
            f"An empty findings list is allowed only if you found nothing.\n\n--- BEGIN ---\n{target['text']}\n--- END ---\n")


def review(target: dict, config: dict, checklist: list[str], focus: str | None) -> dict:
    reply = ask_model(build_prompt(target, checklist, focus), config, skill="code_review", system=SYSTEM,
                      json_schema=REPLY_SCHEMA, max_tokens=4096, temperature=0.1)
    data = reply.json if isinstance(reply.json, dict) else None
    if data is None:
        raise ModelOutputError("code_review: the model's reply has no JSON review; nothing was filed")
    findings = []
    for f in data["findings"]:
        if f["category"] not in checklist:
            raise ModelOutputError(f"code_review: the model filed a finding under {f['category']!r}, which is not on "
                                   f"the checklist ({', '.join(checklist)}); nothing was filed")
        item = {"severity": f["severity"], "category": f["category"], "line": f.get("line"),
                "title": f["title"].strip(), "detail": f.get("detail", "").strip(),
                "suggestion": (f.get("suggestion") or "").strip()}
        if target["kind"] == "file" and item["line"] is not None and not 1 <= item["line"] <= target["lines"]:
            item["line_unverified"] = True  # the model named a line the file does not have
        findings.append(item)
    findings.sort(key=lambda f: (SEVERITIES.index(f["severity"]), f["line"] or 0))
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    outcome = "changes_requested" if counts["critical"] or counts["high"] else "approved_with_notes" if findings else "approved"
    return {"target": target["label"], "kind": target["kind"], "name": target["name"], "summary": data["summary"].strip(),
            "findings": findings, "counts": counts, "outcome": outcome, "checklist": checklist,
            "input_truncated": target["truncated"], "model": reply.model, "provider": reply.provider}


def render(r: dict, agent: str) -> str:
    lines = [f"# Code review: {r['target']}", "",
             f"- Reviewed: {utc_stamp()} by {agent} with {r['provider']}/{r['model']}",
             f"- Checklist: {', '.join(r['checklist'])}",
             f"- Outcome: **{r['outcome']}** — "
             + (", ".join(f"{k}: {v}" for k, v in r["counts"].items() if v) or "no findings")]
    if r["input_truncated"]:
        lines.append("- Note: the input was cut at the size limit; the end of the file was not reviewed.")
    if r.get("confirmed_by_human"):
        lines.append(f"- Critical findings confirmed for filing by a person: {r['confirmed_by_human']!r}")
    lines += ["", "## Summary", "", r["summary"], "", f"## Findings ({len(r['findings'])})", ""]
    if not r["findings"]:
        lines.append("None.")
    for i, f in enumerate(r["findings"], 1):
        where = f"line {f['line']}" + (" (not in the file)" if f.get("line_unverified") else "") if f["line"] else "general"
        lines += [f"### {i}. [{f['severity'].upper()}] {f['title']}", "",
                  f"- Category: {f['category']}; where: {where}", "", f["detail"] or "(no detail given)"]
        if f["suggestion"]:
            lines += ["", f"Suggested fix: {f['suggestion']}"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def file_review(config: dict, payload: dict, result: dict) -> dict:
    agent = agent_name(payload, config)
    path = knowledge_path(config, "code_reviews", f"{result['name']}_review_{today()}_{agent}.md")
    atomic_write_text(path, render(result, agent))
    return dict(result, filed=True, report=str(path))


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "code_review")
    confirm = payload.get("confirm_critical", opts["ask_before_filing_critical"])
    answer = answer_text(payload)
    if answer is not None:
        pending = load_stash(config, "code_review", payload)
        if pending is not None:
            drop_stash(config, "code_review", payload)
            if answer in APPROVE_WORDS:
                log.info("code_review: a person confirmed filing %d critical findings", pending["counts"]["critical"])
                return file_review(config, payload, dict(pending, confirmed_by_human=payload["human_answer"]))
            log.info("code_review: a person declined filing (%r); nothing written", answer)
            return dict(pending, filed=False, report=None, declined_by_human=payload["human_answer"])
        log.warning("code_review: answer given but the pending review is gone; reviewing again")
    target = load_target(payload, config, int(opts["max_input_chars"]))
    checklist = payload.get("checklist") or list(CHECKLIST)
    result = review(target, config, checklist, payload.get("focus"))
    log.info("code_review of %s: %s (%s)", target["label"], result["outcome"], result["counts"])
    if result["counts"]["critical"] and confirm:
        save_stash(config, "code_review", payload, result)
        crit = [f for f in result["findings"] if f["severity"] == "critical"]
        listing = "; ".join(f"line {f['line'] or '?'}: {f['title']}" for f in crit[:5])
        raise NeedsHuman(f"code_review of {target['label']} found {len(crit)} critical finding(s): {listing}. "
                         f"File this review? Answer 'file' to file it or 'discard' to drop it.", ["file", "discard"])
    return file_review(config, payload, result)
