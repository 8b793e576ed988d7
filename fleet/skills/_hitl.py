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
