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
