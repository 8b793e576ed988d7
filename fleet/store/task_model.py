"""The task record as callers see it (`Task`, `Page`) and the validation of
what a caller may put into a task. Backend-neutral: no SQL here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from .errors import InvalidInput
from .values import dumps, loads

SKILL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLAIN_FIELDS = frozenset({"skill", "payload", "priority"})
SPEC_FIELDS = frozenset({
    "skill", "payload", "priority", "assigned_to", "max_attempts", "available_at",
    "delay_s", "idempotency_key", "depends_on", "created_by",
})


@dataclasses.dataclass(frozen=True)
class Task:
    id: int
    skill: str
    payload: dict
    priority: int
    status: str
    assigned_to: str | None
    idempotency_key: str | None
    attempts: int
    max_attempts: int
    deps_pending: int
    available_at: float
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    worker: str | None
    lease_token: str | None
    lease_expires_at: float | None
    cancel_requested: bool
    result: Any
    error: str | None
    error_reason: str | None
    question: Any
    answer: Any
    created_by: str | None

    @property
    def dead_letter(self) -> bool:
        """FAILED with its attempts used up: the dead-letter view."""
        return self.status == "FAILED" and self.attempts >= self.max_attempts

    def to_dict(self, *, include_token: bool = False) -> dict:
        data = dataclasses.asdict(self)
        if not include_token:
            data.pop("lease_token")
        data["dead_letter"] = self.dead_letter
        return data

    @classmethod
    def _fast(cls, fields: dict) -> Task:
        """Build from a complete dict of field values without the frozen
        dataclass's per-field __setattr__ (the queue's hot path builds many)."""
        task = object.__new__(cls)
        task.__dict__.update(fields)
        return task

    @classmethod
    def from_row(cls, row) -> Task:
        return cls._fast(dict(  # noqa: C408 (field names read better as keywords)
            id=row["id"], skill=row["skill"], payload=loads(row["payload"]),
            priority=row["priority"], status=row["status"], assigned_to=row["assigned_to"],
            idempotency_key=row["idempotency_key"], attempts=row["attempts"],
            max_attempts=row["max_attempts"], deps_pending=row["deps_pending"],
            available_at=row["available_at"], created_at=row["created_at"],
            updated_at=row["updated_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], worker=row["worker"],
            lease_token=row["lease_token"], lease_expires_at=row["lease_expires_at"],
            cancel_requested=bool(row["cancel_requested"]), result=loads(row["result"]),
            error=row["error"], error_reason=row["error_reason"],
            question=loads(row["question"]), answer=loads(row["answer"]),
            created_by=row["created_by"],
        ))


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[Task]
    total: int
    limit: int
    offset: int

    def to_dict(self) -> dict:
        return {
            "items": [t.to_dict() for t in self.items],
            "total": self.total, "limit": self.limit, "offset": self.offset,
        }


def is_number(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN or infinity, not an int too
    large for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# SQLite integers are signed 64-bit: no row can have an id outside this.
MAX_ID = 2**63 - 1


def check_task_id(task_id: Any) -> int:
    """A task id as the store takes it: an int (InvalidInput otherwise)."""
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise InvalidInput(f"a task id is a whole number (like 42), got {task_id!r}")
    return task_id


def check_unicode(value: str, what: str) -> str:
    """Text the database can hold: no lone surrogates (undecodable bytes)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{what} contains text that is not valid Unicode (a lone surrogate); "
                "decode bytes properly before passing them"
            ) from None
    return value


def check_optional_text(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, got {type(value).__name__}")
    return None if value is None else check_unicode(value, what)


def check_token(token: Any) -> str:
    if not isinstance(token, str):
        raise InvalidInput(f"a lease token is the string claim() returned, got {type(token).__name__}")
    return token


def escaped_text(text: str) -> str:
    """Free text (an error message) made storable: a lone surrogate is kept
    as its escape (\\udce9) instead of refusing the whole record."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise InvalidInput(f"priority must be an integer from 1 to 10 (higher runs first), got {priority!r}")
    return priority


def check_skill(skill: Any) -> str:
    if not isinstance(skill, str) or not SKILL_NAME.match(skill):
        raise InvalidInput(
            f"skill name must be letters, digits and underscores (like 'code_index'), got {skill!r}"
        )
    return skill


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidInput(f"{what} must be a non-empty name of at most 200 characters, got {value!r}")
    return check_unicode(value, what)


def check_lease(lease_s: Any) -> float:
    if not is_number(lease_s) or not 0 < lease_s <= 7 * 86400:
        raise InvalidInput(f"lease_s must be a number of seconds > 0 and at most a week, got {lease_s!r}")
    return float(lease_s)


def prepare_spec(spec: dict, ts: float, *, default_max_attempts: int, max_payload_bytes: int) -> dict:
    """Validate one enqueue spec and turn it into column values.

    Raises InvalidInput naming the field; nothing has been written yet.
    """
    if spec.keys() <= _PLAIN_FIELDS:  # the common bulk shape: skill, payload, priority
        skill, payload, priority = spec.get("skill"), spec.get("payload"), spec.get("priority", 5)
        if (type(skill) is str and SKILL_NAME.match(skill) and type(payload) is dict
                and type(priority) is int and 1 <= priority <= 10):
            return {"skill": skill, "payload": dumps(payload, "payload", max_payload_bytes),
                    "priority": priority, "max_attempts": default_max_attempts,
                    "available_at": ts, "idempotency_key": None, "assigned_to": None,
                    "depends_on": [], "created_by": None}
        # anything unusual takes the full path below, which names the bad field
    unknown = spec.keys() - SPEC_FIELDS
    if unknown:
        raise InvalidInput(
            f"unknown task field(s): {', '.join(sorted(map(str, unknown)))}; "
            f"known fields are {', '.join(sorted(SPEC_FIELDS))}"
        )
    skill = check_skill(spec.get("skill"))
    payload = spec.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise InvalidInput(f"payload must be a JSON object (a dict), got {type(payload).__name__}")
    priority = check_priority(spec.get("priority", 5))
    max_attempts = spec.get("max_attempts")
    if max_attempts is None:
        max_attempts = default_max_attempts
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 1000:
        raise InvalidInput(f"max_attempts must be an integer from 1 to 1000, got {max_attempts!r}")
    available_at = spec.get("available_at")
    delay = spec.get("delay_s")
    if available_at is not None and delay is not None:
        raise InvalidInput("give either available_at or delay_s, not both")
    if delay is not None:
        if not is_number(delay) or delay < 0:
            raise InvalidInput(f"delay_s must be a number of seconds >= 0, got {delay!r}")
        available_at = ts + delay
    elif available_at is None:
        available_at = ts
    elif not is_number(available_at):
        raise InvalidInput(f"available_at must be UTC epoch seconds (a finite number), got {available_at!r}")
    key = spec.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 500):
        raise InvalidInput("idempotency_key must be a non-empty string of at most 500 characters")
    assigned = spec.get("assigned_to")
    if assigned is not None:
        check_name(assigned, "assigned_to (a worker name)")
    deps = spec.get("depends_on") or ()
    if isinstance(deps, (int, str, bytes, dict)) or not hasattr(deps, "__iter__"):
        raise InvalidInput(f"depends_on must be a list of task ids, got {deps!r}")
    deps = list(deps)  # read once: an iterator is used up by the check below
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in deps):
        raise InvalidInput(f"depends_on must be a list of task ids, got {deps!r}")
    if any(not -MAX_ID - 1 <= d <= MAX_ID for d in deps):
        raise InvalidInput(f"a number is too large for the store (depends_on {deps!r}); ids and counts go up "
                           "to 2**63 - 1")
    created_by = spec.get("created_by")
    if created_by is not None and not isinstance(created_by, str):
        raise InvalidInput(f"created_by must be a name (a string), got {created_by!r}")
    return {
        "skill": skill,
        "payload": dumps(payload, "payload", max_payload_bytes),
        "priority": priority, "max_attempts": max_attempts,
        "available_at": float(available_at), "idempotency_key": key,
        "assigned_to": assigned, "depends_on": sorted(set(deps)),
        "created_by": created_by,
    }
