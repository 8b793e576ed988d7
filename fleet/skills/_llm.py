"""The skills' one door to a model: a thin wrapper over the routing layer's
`call_model` that tags the call with the skill and turns "no provider could serve
this call" into ModelUnavailable (carrying the routing layer's own message), so a
skill with a real non-model method can fall back to it and every other skill fails
with that clear message.
"""

from __future__ import annotations

from typing import Any

from fleet.skills._common import ModelOutputError, SkillError


class ModelUnavailable(SkillError):
    """No model provider could serve the call (none reachable, or refused by offline mode)."""

    retryable = True  # a model server may be started before the next attempt
    defer_until: float | None = None  # providers only busy: the worker reschedules the task then


def ask_model(prompt: Any, config: dict, *, skill: str, system: str | None = None, max_tokens: int | None = None,
              temperature: float | None = None, json_schema: dict | None = None):
    """call_model(...) for a skill; returns the routing layer's ModelResult (.text, .json, .model, .provider).

    Raises ModelUnavailable (no provider reachable or allowed: the routing layer's
    message), ModelOutputError (JSON asked for and the reply does not fit the schema);
    budget blocks and rejected requests propagate unchanged (the task must fail)."""
    from fleet.skills._models import ModelOutputInvalid, NoProviderAvailable, call_model

    kwargs: dict = {"skill": skill}
    for key, value in (("system", system), ("max_tokens", max_tokens), ("temperature", temperature),
                       ("json_schema", json_schema)):
        if value is not None:
            kwargs[key] = value
    try:
        return call_model(prompt, config, **kwargs)
    except NoProviderAvailable as exc:
        unavailable = ModelUnavailable(str(exc))
        unavailable.defer_until = getattr(exc, "defer_until", None)
        raise unavailable from None
    except ModelOutputInvalid as exc:
        preview = (exc.text or "").strip()[:200].replace("\n", " ")
        raise ModelOutputError(f"{skill}: {exc}; nothing was written. Reply began: {preview!r}") from None
