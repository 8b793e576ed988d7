"""What a worker prefers to claim next: tasks on the models the local model
server already holds (hw_state.json `models.loaded`, plus the models of the
tasks this worker is running), as the `prefer` argument of the store's claim.

A task's model is its payload's `model` field, else the model its skill's
provider chain would use (the chain's first provider; None for a skill that
calls no model or starts with a cloud provider: such tasks never swap a
local model, so they count as preferred).
"""

from __future__ import annotations

import logging
import time

from .hw_state import read_hw_state

log = logging.getLogger("fleet.model_affinity")

HW_STATE_TTL_S = 1.0  # hw_state.json is re-read at most this often
SKILL_MODEL_TTL_S = 30.0  # a skill's configured model is re-resolved at most this often
MAX_NAME = 500  # the longest model name the store's claim preference takes


def _key(name: str) -> str:
    """A model name compared as the store compares it (no Ollama ':latest' tag)."""
    name = name.strip()
    return name[:-len(":latest")] if name.endswith(":latest") else name


class ModelAffinity:
    """The claim preference of one worker (role skills, config), cached."""

    def __init__(self, cfg: dict, skills: list[str]):
        self.cfg = cfg
        self.skills = list(skills)
        self.max_wait_s = float(cfg["workers"]["loaded_model_max_wait_s"])
        self._loaded: tuple[float, frozenset[str]] = (float("-inf"), frozenset())
        self._skill_models: dict[str, tuple[float, str | None]] = {}
        self.enabled = self.max_wait_s > 0 and self._uses_models()

    def _uses_models(self) -> bool:
        try:
            from .skills._models import skills_use_models

            return skills_use_models(self.cfg, self.skills)
        except Exception as exc:  # noqa: BLE001 - no preference, the plain order still works
            log.warning("model-aware claiming is off: could not read the skills: %s", exc)
            return False

    def loaded_models(self) -> frozenset[str]:
        """Models the local server holds now, by hw_state.json (empty when the
        file is stale or the server unreachable)."""
        at, models = self._loaded
        if time.monotonic() - at < HW_STATE_TTL_S:
            return models
        state = read_hw_state(self.cfg)
        info = state.get("models") or {}
        names: set[str] = set()
        if not state.get("stale") and info.get("server_reachable"):
            for m in info.get("loaded") or []:
                name = m.get("name") if isinstance(m, dict) else None
                if isinstance(name, str) and 0 < len(_key(name)) <= MAX_NAME:
                    names.add(_key(name))
        models = frozenset(names)
        self._loaded = (time.monotonic(), models)
        return models

    def skill_model(self, skill: str) -> str | None:
        """The model a task of `skill` with no payload model would use locally."""
        hit = self._skill_models.get(skill)
        if hit is not None and time.monotonic() - hit[0] < SKILL_MODEL_TTL_S:
            return hit[1]
        model = None
        try:
            from .skills._models import get_provider, resolve_chain, skills_use_models

            if skills_use_models(self.cfg, [skill]):
                chain = resolve_chain(self.cfg, skill=skill)
                if chain:
                    p = get_provider(self.cfg, chain[0])
                    if not p.is_cloud:
                        model = p.resolve_model(None) or None
        except Exception as exc:  # noqa: BLE001 - unknown: treated as no model
            log.debug("no configured model for skill %s: %s", skill, exc)
        self._skill_models[skill] = (time.monotonic(), model)
        return model

    def task_model(self, task) -> str | None:
        """The model `task` runs on, as compared (no ':latest'); None: none known."""
        model = task.payload.get("model") if isinstance(task.payload, dict) else None
        if not (isinstance(model, str) and model.strip()):
            model = self.skill_model(task.skill)
        return _key(model) if model else None

    def prefer(self, running_models=()) -> dict | None:
        """The `prefer` argument for the next claim, or None (plain order):
        off by config, a role with no model skills, or no model known loaded."""
        if not self.enabled:
            return None
        models = set(self.loaded_models())
        models.update(_key(m) for m in running_models if isinstance(m, str) and m.strip())
        # the store refuses odd names (a payload may name anything): leave them out, never fail the claim
        models = {m for m in models if 0 < len(m) <= MAX_NAME}
        if not models:
            return None
        skills = [s for s in self.skills if (m := self.skill_model(s)) is None or _key(m) in models]
        return {"models": sorted(models), "skills": skills, "max_wait_s": self.max_wait_s}
