"""Model-aware claim order: which claimable task a worker takes when it says
which models its model server holds (`claim(..., prefer=...)`).

Among claimable tasks of the top priority, one whose model is already loaded
goes ahead of older ones, so a mixed-model backlog does not swap models on
every task; priorities still win, and the waiting-age bound keeps any task
from starving. Pure functions over the candidate rows; the SQL is in tasks.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidInput
from .task_model import check_skill

# How many claimable rows (in the plain claim order) the preference looks at.
# A loaded-model task further back is not seen; then the plain order decides.
PREFER_WINDOW = 400
_MAX_NAMES = 1000


@dataclass(frozen=True)
class Preference:
    """What a claiming worker prefers. `models`: model names its server holds
    (compared without an Ollama ':latest' tag); `skills`: skills whose tasks
    count as preferred when the payload names no model (their configured
    model is loaded, or they need none); `max_wait_s`: the waiting-age bound."""

    models: frozenset[str]
    skills: frozenset[str]
    max_wait_s: float


def _model_key(name: str) -> str:
    name = name.strip()
    return name[:-len(":latest")] if name.endswith(":latest") else name


def check_preference(prefer) -> Preference | None:
    """Validate `claim(prefer=...)`: None, or a dict with optional `models`
    and `skills` (lists of names) and `max_wait_s` (seconds >= 0). Returns
    None when nothing is preferred (the plain claim order applies)."""
    if prefer is None:
        return None
    if not isinstance(prefer, dict):
        raise InvalidInput("prefer must be a dict {models: [names], skills: [names], max_wait_s: seconds}, "
                           f"not {type(prefer).__name__}")
    unknown = set(prefer) - {"models", "skills", "max_wait_s"}
    if unknown:
        raise InvalidInput(f"prefer: unknown field(s) {sorted(unknown)}; use models, skills, max_wait_s")
    lists = {}
    for field in ("models", "skills"):
        value = prefer.get(field) or []
        if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
            raise InvalidInput(f"prefer {field} must be a list of names, not {value!r}")
        if len(value) > _MAX_NAMES or not all(isinstance(v, str) and v.strip() and len(v) <= 500 for v in value):
            raise InvalidInput(f"prefer {field} must be at most {_MAX_NAMES} non-empty names "
                               "(each at most 500 characters)")
        lists[field] = value
    for skill in lists["skills"]:
        check_skill(skill)
    wait = prefer.get("max_wait_s", 120.0)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait) or wait < 0:
        raise InvalidInput(f"prefer max_wait_s must be a number of seconds >= 0, not {wait!r}")
    if not lists["models"] and not lists["skills"]:
        return None
    return Preference(frozenset(_model_key(m) for m in lists["models"]), frozenset(lists["skills"]), float(wait))


def is_preferred(row, pref: Preference) -> bool:
    """Whether a candidate row (id, priority, skill, available_at, model) runs
    on a loaded model: its payload's `model` is loaded, or it names none and
    its skill is a preferred one."""
    model = row["model"]
    if model is None:
        return row["skill"] in pref.skills
    return isinstance(model, str) and _model_key(model) in pref.models


def claim_order(rows: Sequence, pref: Preference) -> list[int]:
    """The ids of `rows` (claimable, in the plain order: priority desc, id)
    in the order a worker with `pref` should try to claim them.

    At the top priority, preferred tasks come first (oldest id first), but
    only those that became ready at most `max_wait_s` after the longest-
    waiting task of that priority: a task that has waited that much longer
    than every loaded-model task is taken before them, so none starves
    however long the backlog. Everything else keeps the plain order."""
    if not rows:
        return []
    top = rows[0]["priority"]
    level = [r for r in rows if r["priority"] == top]
    horizon = min(r["available_at"] for r in level) + pref.max_wait_s
    first = [r["id"] for r in level if r["available_at"] <= horizon and is_preferred(r, pref)]
    chosen = set(first)
    return first + [r["id"] for r in rows if r["id"] not in chosen]
