"""Which model does what in a workflow: 'provider' or 'provider/model' specs
from [workflow], resolved against [providers] and [models] chain, and the rule
that the reviewer is never the executor (same provider and same model)."""

from __future__ import annotations


class RoleError(ValueError):
    """The workflow's models are misconfigured; the message says how to fix it."""


def parse(spec: str) -> tuple[str, str]:
    """'claude/claude-sonnet-4-6' -> ('claude', 'claude-sonnet-4-6'); 'ollama' -> ('ollama', '')."""
    provider, _, model = spec.strip().partition("/")
    return provider.strip(), model.strip()


def effective(cfg: dict, spec: str) -> dict:
    """{provider, model} with the model the provider would use when the spec names none."""
    provider, model = parse(spec)
    settings = cfg["providers"].get(provider)
    if settings is None:
        configured = ", ".join(sorted(cfg["providers"])) or "(none)"
        raise RoleError(f"[workflow] names provider {provider!r}, which is not in [providers] "
                        f"(configured: {configured})")
    return {"provider": provider, "model": model or str(settings.get("model") or "")}


def resolve_roles(cfg: dict, overrides: dict | None = None) -> dict:
    """{planner, executor, reviewer, learner}: each {provider, model}.
    RoleError when the reviewer would be the executor."""
    wcfg = {**cfg.get("workflow", {}), **{k: v for k, v in (overrides or {}).items() if v}}
    chain = list(cfg["models"]["chain"])
    first = chain[0] if chain else ""
    second = chain[1] if len(chain) > 1 else first
    specs = {
        "planner": wcfg.get("planner") or first,
        "executor": wcfg.get("executor") or first,
        "reviewer": wcfg.get("reviewer") or second,
    }
    specs["learner"] = wcfg.get("learner") or specs["planner"]
    for role, spec in specs.items():
        if not spec:
            raise RoleError(f"no model for the workflow's {role}: set [workflow] {role} = \"provider/model\" "
                            "or a [models] chain")
    roles = {role: effective(cfg, spec) for role, spec in specs.items()}
    if same(roles["executor"], roles["reviewer"]):
        raise RoleError(f"the reviewer ({describe(roles['reviewer'])}) is the executor: self-review is not "
                        "review. Set [workflow] reviewer to a different provider or model")
    return roles


def same(a: dict, b: dict) -> bool:
    return a["provider"] == b["provider"] and a["model"] == b["model"]


def describe(role: dict) -> str:
    return f"{role['provider']}/{role['model']}" if role["model"] else role["provider"]
