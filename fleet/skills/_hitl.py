"""Human in the loop: a skill raises NeedsHuman to park its task for a person.

The worker turns it into a WAITING_HUMAN task (store.ask_human); when someone
answers from the CLI or dashboard the task is claimed again and the skill runs
with `payload["human_answer"]` (and `payload["human_question"]`) set.
"""

from __future__ import annotations


class NeedsHuman(Exception):
    """Raise from a skill's run() to ask a person before going on."""

    def __init__(self, question: str, options: list[str] | None = None):
        super().__init__(question)
        self.question = question
        self.options = list(options or [])


# The payload keys the store adds when a person answers (store.answer).
HUMAN_FIELDS = ("human_answer", "human_question")
APPROVE_WORDS = {"approve", "approved", "yes", "y", "ok", "file", "accept", "go"}


def answer_text(payload: dict) -> str | None:
    """The person's answer as lower-case text (dict answers: their 'choice' /
    'answer' / 'option' field); None when nobody has answered yet."""
    if "human_answer" not in payload:
        return None
    ans = payload["human_answer"]
    if isinstance(ans, dict):
        ans = ans.get("choice") or ans.get("answer") or ans.get("option") or ""
    return str(ans).strip().lower()


def without_human_fields(payload: dict) -> dict:
    """The payload as its author sent it (what the skill's schema describes)."""
    return {k: v for k, v in payload.items() if k not in HUMAN_FIELDS}


# -- "more info" answers ----------------------------------------------------
# The operations manual: a "Need more info" answer creates a research_loop
# task. The dashboard, the launcher's Fleet Comm and the CLI all answer
# through answer_more_info, so each gets the same research task.
MORE_INFO_SKILL = "research_loop"


def research_refusal(cfg: dict) -> str | None:
    """Why this fleet cannot research a 'more info' answer, or None when it can."""
    from fleet import skill_registry
    from fleet.config import air_gap_refusal

    if MORE_INFO_SKILL not in skill_registry.discover(cfg):
        return f"this fleet has no {MORE_INFO_SKILL} skill"
    refusal = air_gap_refusal(cfg, MORE_INFO_SKILL)
    if refusal:
        return refusal
    if cfg["fleet"]["offline_mode"] or cfg["fleet"]["air_gap_mode"]:
        return f"{MORE_INFO_SKILL} needs the network and the fleet is in offline mode"
    return None


def answer_more_info(store, cfg: dict, task_id: int, text: str, *, by: str):
    """Answer a WAITING_HUMAN task with {choice: "more_info", text} after
    queueing a research_loop task on `text` linked to it (its payload's
    `for_task`; the answer's `research_task`). Returns (the answered task,
    the research task or None, why none). A task that is not waiting is
    refused by the store as any answer is, and nothing is queued."""
    if not str(text).strip():
        raise ValueError("a more info response needs text saying what you want to know")
    task = store.require(task_id)
    answer: dict = {"choice": "more_info", "text": text}
    if task.status != "WAITING_HUMAN":
        return store.answer(task_id, answer, by=by), None, None  # the store's InvalidTransition says why
    why = research_refusal(cfg)
    if why:
        return store.answer(task_id, dict(answer, research=f"not queued: {why}"), by=by), None, why
    asked = (task.question or {}).get("question") if isinstance(task.question, dict) else None
    payload = {"question": text.strip()[:2000], "for_task": task_id}
    if asked:
        payload["context"] = f"Task {task_id} ({task.skill}) asked a person: {str(asked)[:3800]}"
    # One research task per wait: two people answering at once share it.
    key = f"more_info:{task_id}:{task.updated_at}"
    research = store.enqueue(MORE_INFO_SKILL, payload, priority=task.priority, created_by=by, idempotency_key=key)
    try:
        answered = store.answer(task_id, dict(answer, research_task=research.id), by=by)
    except Exception:
        now = store.require(task_id)
        if not (isinstance(now.answer, dict) and now.answer.get("research_task") == research.id):
            from fleet.store.errors import InvalidTransition

            try:
                store.cancel(research.id, by=by)  # another answer won: no research for an answer never given
            except InvalidTransition:
                pass  # it already ran
        raise
    return answered, research, None
