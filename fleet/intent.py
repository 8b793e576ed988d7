"""Intent parsing for `task "..."`: an instruction becomes {skill, payload,
priority}. A JSON instruction is a task spec (`task_spec_from_json`); otherwise
the conductor model picks from the installed skills' catalogue; with no model
reachable (or a malformed reply) a deterministic matcher over the descriptions
decides, and low confidence is an error listing the best candidates, never a
silent guess.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

log = logging.getLogger("fleet.intent")

INTENT_SCHEMA = {
    "type": "object",
    "required": ["skill", "payload"],
    "properties": {
        "skill": {"type": "string"},
        "payload": {"type": "object"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 10},
    },
}
_STOP = {"a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "from", "with", "by", "into", "onto", "about", "over", "this", "that", "these", "those", "it", "its", "is", "are", "be", "was", "were", "please", "can", "could", "would", "you", "me", "my", "our", "we", "i", "some", "any", "all", "do", "does", "make", "run", "task", "job", "then", "also", "up", "out", "as", "via", "using", "use", "new"}
_PRIORITY_WORDS = ((re.compile(r"\b(urgent|asap|immediately|critical|high[- ]priority)\b", re.IGNORECASE), 8),
                   (re.compile(r"\b(low[- ]priority|whenever|no rush|when idle)\b", re.IGNORECASE), 3))


class IntentError(ValueError):
    """The instruction could not be turned into a task; `candidates` lists the
    best guesses as (skill, confidence, description)."""

    def __init__(self, message: str, candidates: list[tuple[str, float, str]] | None = None):
        super().__init__(message)
        self.candidates = candidates or []


# British spellings as American ones, so both sides of a match agree
# (summarise/summarize, analyse/analyze, colour/color).
_BRITISH = (("isation", "ization"), ("ising", "izing"), ("ised", "ized"), ("ises", "izes"), ("ise", "ize"),
            ("ysing", "yzing"), ("ysed", "yzed"), ("yse", "yze"), ("our", "or"))
# Suffixes stripped (longest first) from what is left, keeping a stem of 4+
# letters: summarize/summary/summaries/summarising all become "summar".
_SUFFIXES = ("ization", "ation", "izing", "yzing", "ized", "yzed", "ysis", "ize", "yze", "ion", "ing", "ed", "er",
             "is", "y", "e")


def normalize_word(word: str) -> str:
    """One word as the matcher compares it: lower case, American spelling,
    without plural, verb-form and common derivational endings."""
    w = word.lower()
    for british, american in _BRITISH:
        if w.endswith(british) and len(w) - len(british) >= 3:
            w = w[: -len(british)] + american
            break
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")) and len(w) > 4:
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            return w[: -len(suffix)]
    return w


def _tokens(text: str) -> list[str]:
    out = []
    for word in re.findall(r"[a-z0-9]+", text.lower().replace("_", " ")):
        if word in _STOP or len(word) < 2:
            continue
        out.append(normalize_word(word))
    return out


PATH_WEIGHT = 0.25  # a word of a path, file name or URL: the file type is a weaker signal than the verb
TYPE_WEIGHT = 0.5  # the kind of file a path names ("code" for .py), weaker than any word the operator wrote
_FILE_KINDS = {("py", "js", "ts", "go", "rs", "c", "h", "cpp", "java", "rb", "sh", "kt", "swift"): "code",
               ("md", "txt", "rst", "org", "pdf", "html", "htm", "tex"): "document"}


def _weighted_query(instruction: str, vocabulary: set[str]) -> dict[str, float]:
    """The instruction's words with their weights: words in paths and URLs
    count PATH_WEIGHT, others 1; two words that make one known term
    ("flash cards", "back up") also count as that term."""
    weights: dict[str, float] = {}
    spans = [m.span() for m in _URL_RE.finditer(instruction)]
    for m in _PATH_RE.finditer(instruction):
        spans.append(m.span())
        extension = m.group(0).rstrip(".,;").rsplit("/", 1)[-1].rpartition(".")[2].lower()
        kind = next((k for exts, k in _FILE_KINDS.items() if extension in exts), None)
        if kind is not None:
            weights[kind] = TYPE_WEIGHT
    previous = None
    for m in re.finditer(r"[A-Za-z0-9]+", instruction.replace("_", " ")):
        raw = m.group(0).lower()
        in_path = any(a <= m.start() < b for a, b in spans)
        if previous is not None and not in_path:
            joined = normalize_word(previous + raw)
            if joined in vocabulary:
                weights[joined] = max(weights.get(joined, 0.0), 1.0)
        previous = None if in_path else raw
        if raw in _STOP or len(raw) < 2:
            continue
        word = normalize_word(raw)
        weights[word] = max(weights.get(word, 0.0), PATH_WEIGHT if in_path else 1.0)
    return weights


def _skill_terms(info) -> tuple[set[str], set[str]]:
    name = set(_tokens(info.name))
    text = info.description or ""
    props = (info.payload_schema or {}).get("properties") or {}
    text += " " + " ".join(f"{k} {v.get('description', '')}" for k, v in props.items() if isinstance(v, dict))
    return name, set(_tokens(text))


EVIDENCE_SCALE = 1.5  # score points of evidence (about one distinctive word) for a confident lead


def rank_skills(instruction: str, catalogue: dict) -> list[tuple[str, float]]:
    """Skills ranked by a deterministic score over names and descriptions
    (name words count 3x, rarer words more, words of paths and URLs a
    quarter), each with a confidence in [0, 1]: the strength of its match
    times how clearly it leads the runner-up (1 - exp(-lead / EVIDENCE_SCALE);
    a tie is 0)."""
    if not catalogue:
        return []
    terms = {name: _skill_terms(info) for name, info in catalogue.items()}
    vocabulary = set().union(*(nm | ds for nm, ds in terms.values()))
    query = _weighted_query(instruction, vocabulary)
    if not query:
        return []
    n = len(terms)
    df = {t: sum(1 for nm, ds in terms.values() if t in nm or t in ds) for t in query}
    scores = {}
    for name, (nm, ds) in terms.items():
        score = 0.0
        for t, weight in query.items():
            if df[t] == 0:
                continue
            idf = math.log(1.0 + n / df[t])
            score += (3.0 if t in nm else 1.0 if t in ds else 0.0) * idf * weight
        scores[name] = score
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    best = ranked[0][1]
    if best <= 0:
        return [(name, 0.0) for name, _ in ranked]
    strong = 3.0 * math.log(2.0)  # one name word shared with about half the skills
    out = []
    for i, (name, score) in enumerate(ranked):
        other = ranked[1][1] if i == 0 and len(ranked) > 1 else best
        lead = max(0.0, score - other)
        out.append((name, round(min(1.0, score / strong) * (1.0 - math.exp(-lead / EVIDENCE_SCALE)), 3)))
    return out


def _priority(instruction: str, default: int = 5) -> int:
    for pattern, value in _PRIORITY_WORDS:
        if pattern.search(instruction):
            return value
    return default


_PATH_RE = re.compile(r"(?<![\w:/])(?:~|\.{1,2})?[\w.-]*/[\w./~-]*|(?<![\w/])[\w-]+\.[A-Za-z0-9]{1,5}\b")
_URL_RE = re.compile(r"https?://\S+")
_LEAD_WORDS = {"search", "find", "fetch", "query", "look", "check", "review", "get", "show", "tell", "web"}
_TEXT_FIELDS = ("query", "text", "topic", "prompt", "question", "focus", "instruction")


def _field_value(field: str, prop: dict, instruction: str, skill_words: set[str]) -> Any:
    """What the instruction says for one payload field, or None."""
    kind = prop.get("type", "string")
    if "url" in field:
        m = _URL_RE.search(instruction)
        return m.group(0).rstrip(".,;)") if m else None
    if "path" in field or "file" in field:
        found = [p.rstrip(".,;") for p in _PATH_RE.findall(_URL_RE.sub(" ", instruction))]
        if kind == "array":
            return found or None
        return found[0] if found else None
    if kind == "string" and (field in _TEXT_FIELDS or not prop.get("enum")):
        words = instruction.split()
        while words and (_tokens(words[0]) == [] or set(_tokens(words[0])) <= skill_words | _LEAD_WORDS):
            words.pop(0)
        return " ".join(words) or None
    if prop.get("enum"):
        hits = [v for v in prop["enum"] if isinstance(v, str)
                and re.search(rf"\b{re.escape(v.lower())}\b", instruction.lower())]
        return hits[0] if len(hits) == 1 else None
    return None


def _payload_from_text(info, instruction: str) -> dict:
    """A payload for the matcher from the instruction: paths, URLs, enum words
    and free text go to the fields that take them; a required field the text
    does not give is an error that shows the JSON to send instead."""
    schema = info.payload_schema or {}
    props = {k: v for k, v in (schema.get("properties") or {}).items() if isinstance(v, dict)}
    required = [k for k in (schema.get("required") or []) if k in props]
    skill_words = set(_tokens(info.name))
    payload: dict = {}
    fields = required or [k for k in props if "path" in k or "url" in k or k in _TEXT_FIELDS]
    for field in fields:
        value = _field_value(field, props[field], instruction, skill_words)
        if value is not None and (field in required or not payload):
            payload[field] = value
    missing = [k for k in required if k not in payload]
    if missing:
        raise IntentError(
            f"skill {info.name} needs {', '.join(missing)}, which the instruction does not give; send JSON: "
            f"{json.dumps({'skill': info.name, 'payload': {k: '...' for k in required}})}",
            [(info.name, 1.0, info.description)])
    return payload


# Task fields a JSON instruction may give beside "skill" and "payload": the
# store's enqueue options, less created_by (the caller sets who asked).
TASK_FIELDS = ("priority", "assigned_to", "max_attempts", "delay_s", "available_at", "idempotency_key",
               "depends_on")


def task_spec_from_json(spec: Any, catalogue: dict | None = None) -> dict:
    """A JSON instruction as {skill, payload, <task fields given>}.

    Two forms, one rule: the task fields (TASK_FIELDS) at the top level are
    always the task's, never the payload's.
    * payload form `{"skill": S, "payload": {...}, "priority": 8, ...}`: every
      other top-level key is refused (it would be lost, or was meant for the
      payload), naming it and the keys that may stand there;
    * flat form `{"skill": S, field: value, ...}` (no "payload" key): the keys
      that are not task fields are the payload. A task field that is also a
      field of the skill's PAYLOAD_SCHEMA (plan_workload's "priority") is
      ambiguous and refused: the payload form says which is meant.
    Values are checked by the store when the task is enqueued (priority here).
    Raises IntentError; nothing has been written.
    """
    form = '{"skill": "...", "payload": {...}, "priority": 5}'
    if not isinstance(spec, dict) or not isinstance(spec.get("skill"), str) or not spec["skill"]:
        raise IntentError(f'a JSON task needs a "skill" name: {form}, or {{"skill": "...", field: value, ...}}')
    skill = spec["skill"]
    rest = {k: v for k, v in spec.items() if k != "skill"}
    options = {k: rest.pop(k) for k in TASK_FIELDS if k in rest}
    if "payload" in rest:
        payload = rest.pop("payload")
        if not isinstance(payload, dict):
            raise IntentError(f'"payload" must be a JSON object, not {json.dumps(payload)}: {form}')
        if rest:
            raise IntentError(
                f"unknown top-level key(s) {', '.join(sorted(rest))} beside \"payload\": payload fields go "
                f"inside \"payload\"; beside it stand only skill, payload and the task fields "
                f"{', '.join(TASK_FIELDS)}")
    else:
        payload = rest
        info = (catalogue or {}).get(skill)
        props = ((getattr(info, "payload_schema", None) or {}).get("properties") or {}) if info else {}
        clash = sorted(k for k in options if k in props)
        if clash:
            example = json.dumps({"skill": skill, "payload": {**payload, **{k: options[k] for k in clash}}})
            raise IntentError(
                f"{', '.join(clash)} is both a task field and a field of {skill}'s payload, so the flat form "
                f"cannot say which is meant; use the payload form: {example} gives it to the payload, "
                f"and a key beside \"payload\" gives it to the task")
    if "priority" in options:
        prio = options["priority"]
        if isinstance(prio, bool) or not isinstance(prio, int) or not 1 <= prio <= 10:
            raise IntentError(f"priority must be an integer from 1 to 10, not {json.dumps(prio)}")
    return {"skill": skill, "payload": payload, **options}


def _validated(catalogue: dict, skill: str, payload: Any, priority: Any) -> dict:
    from fleet.skill_registry import InvalidPayload, validate_payload

    if skill not in catalogue:
        known = ", ".join(sorted(catalogue)) or "(none installed)"
        raise IntentError(f"unknown skill {skill!r}; installed skills: {known}")
    try:
        validate_payload(catalogue[skill], payload)
    except InvalidPayload as exc:
        raise IntentError(str(exc), [(skill, 1.0, catalogue[skill].description)]) from None
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise IntentError(f"priority must be an integer from 1 to 10, not {priority!r}")
    return {"skill": skill, "payload": payload, "priority": priority}


def _catalogue_entry(info) -> str:
    schema = json.dumps(info.payload_schema or {"type": "object"}, sort_keys=True, separators=(",", ":"))
    return f"- {info.name}: {info.description or '(no description)'}\n  payload schema: {schema}"


CHARS_PER_TOKEN = 3.5  # a cautious average for English with JSON (tokenizers give 3.5-4.5)


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def conductor_system_prompt(instruction: str, catalogue: dict, budget_tokens: int) -> tuple[str, list[str]]:
    """The conductor's system prompt within `budget_tokens` (estimated): the
    skills the offline matcher ranks likeliest first, as many as fit (at
    least one), so a small local server's context is not overflowed by the
    whole catalogue. Returns (prompt, the skills listed)."""
    order = [name for name, _ in rank_skills(instruction, catalogue)] or sorted(catalogue)
    budget = budget_tokens * CHARS_PER_TOKEN
    entries: list[str] = []
    note = "\n(Only the likeliest of the installed skills are listed.)"
    used = len(SYSTEM_PROMPT) + len(note)
    for name in order:
        entry = _catalogue_entry(catalogue[name])
        if entries and used + len(entry) + 1 > budget:
            continue  # a smaller, less likely entry may still fit
        entries.append(entry)
        used += len(entry) + 1
    listed = [e[2:].split(":", 1)[0] for e in entries]
    text = SYSTEM_PROMPT + "\n".join(entries) + (note if len(listed) < len(catalogue) else "")
    return text, listed


SYSTEM_PROMPT = (
    "You turn an operator's instruction into exactly one task for a fleet of AI workers. "
    "Choose the single best skill from the catalogue, fill its payload so it matches the skill's payload "
    "schema, and set priority 1-10 (5 normal, 8 urgent, 3 low). Reply with only JSON: "
    '{"skill": "...", "payload": {...}, "priority": 5}.\n\nInstalled skills:\n'
)


def parse_intent(instruction: str, cfg: dict, *, catalogue: dict | None = None, use_model: bool = True) -> dict:
    """{skill, payload, priority, method (json|model|matcher), confidence, note}.
    Raises IntentError (with candidates) when it cannot decide."""
    from fleet.skill_registry import discover

    if not isinstance(instruction, str) or not instruction.strip():
        raise IntentError('an instruction is needed, e.g. task "summarize notes/today.md"')
    catalogue = discover(cfg) if catalogue is None else catalogue
    text = instruction.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise IntentError(f"the instruction looks like JSON but is not valid JSON ({exc}); "
                              'use {"skill": "...", "payload": {...}, "priority": 5}') from None
        task = task_spec_from_json(spec, catalogue)
        out = _validated(catalogue, task["skill"], task["payload"], task.get("priority", 5))
        return dict(task, **out, method="json", confidence=1.0, note="")
    if not catalogue:
        raise IntentError("no skills are installed (fleet/skills/ is empty); nothing can run this instruction")
    note = ""
    if use_model:
        try:
            return _with_conductor(text, cfg, catalogue)
        except IntentError as exc:
            note = f"conductor model reply unusable ({exc}); used the offline matcher"
        except Exception as exc:  # noqa: BLE001 - no model, budget, anything: the matcher decides
            note = f"conductor model unavailable ({type(exc).__name__}: {exc}); used the offline matcher"
        log.info(note)
    return dict(_with_matcher(text, cfg, catalogue), note=note)


def _with_conductor(text: str, cfg: dict, catalogue: dict) -> dict:
    from fleet.skills._models import ModelOutputInvalid, call_model

    models = cfg["models"]
    system, _ = conductor_system_prompt(text, catalogue, int(models["conductor_prompt_tokens"]))
    try:
        result = call_model(text, cfg, provider=models["conductor_provider"] or None,
                            model=models["conductor_model"] or None,
                            system=system, json_schema=INTENT_SCHEMA,
                            temperature=0.0, max_tokens=512, skill=None)
    except ModelOutputInvalid as exc:
        raise IntentError(f"malformed output: {exc}") from None
    spec = result.json
    out = _validated(catalogue, spec["skill"], spec.get("payload") or {}, spec.get("priority", _priority(text)))
    return dict(out, method="model", confidence=1.0, note=f"parsed by {result.provider}/{result.model}")


def _with_matcher(text: str, cfg: dict, catalogue: dict) -> dict:
    threshold = float(cfg["models"]["intent_min_confidence"])
    ranked = rank_skills(text, catalogue)
    candidates = [(name, conf, catalogue[name].description) for name, conf in ranked[:3]]
    if not ranked or ranked[0][1] < threshold:
        best = f"best guess {ranked[0][0]} at confidence {ranked[0][1]:.2f}, under {threshold:.2f}" if ranked \
            else "no skill matched"
        listing = ("Candidates: " + "; ".join(f"{n} ({c:.2f}): {d or 'no description'}" for n, c, d in candidates)
                   if candidates else "The skills are: " + ", ".join(sorted(catalogue))) + "."
        raise IntentError(
            f"could not tell which skill is meant ({best}). {listing} Name the skill in the "
            'instruction, or give JSON {"skill": "...", "payload": {...}}', candidates)
    name, confidence = ranked[0]
    payload = _payload_from_text(catalogue[name], text)
    out = _validated(catalogue, name, payload, _priority(text))
    return dict(out, method="matcher", confidence=confidence, candidates=candidates)
