"""One health rule for language models, shared by `/api/health` and
`lead_client.py status`: a model server that is missing or failing makes the
fleet "degraded" only while queued tasks need a model, and never "down"
(no model server is needed to start; skills that need one say so when they run).
"""

from __future__ import annotations

RULE = ("a missing or failing model provider makes the fleet degraded only while queued tasks need a model "
        "(a skill with REQUIRES_MODEL = True), and never down")


def providers_in_use(cfg: dict) -> list[str]:
    """The providers named by `[models] chain` and every `[models.skill_chains]` entry, in order."""
    names = list(cfg["models"]["chain"])
    for chain in cfg["models"]["skill_chains"].values():
        names += list(chain)
    return list(dict.fromkeys(names))


def queued_needing_model(cfg: dict, store, catalogue: dict | None = None) -> int:
    """PENDING tasks (assigned or not, due or scheduled) of skills that
    declare REQUIRES_MODEL = True (`catalogue`: the skill catalogue, when
    the caller holds one)."""
    if catalogue is None:
        from fleet.skill_registry import discover

        catalogue = discover(cfg)
    skills = [name for name, info in catalogue.items() if info.requires_model]
    return sum(store.list_tasks(status="PENDING", skill=s, limit=1).total for s in skills)


def model_health(cfg: dict, store, hw: dict | None = None, catalogue: dict | None = None) -> dict:
    """The models component: {"status": healthy | degraded, "providers":
    {name: breaker state}, "open_breakers", "server_reachable" (the local
    model server per hw_state.json; None when that is stale), "unavailable"
    (providers in use that cannot answer now), "problem" (in words, or None),
    "queued_needing_model", "rule"}."""
    states = store.provider_states()
    providers = {s["provider"]: {"breaker": s["breaker"], "cooling_down": s["cooling_down"],
                                 "consecutive_failures": s.get("consecutive_failures"),
                                 "last_error": (s.get("last_error") or "")[:300] or None}
                 for s in states}
    open_ = [p for p, s in providers.items() if s["breaker"] == "open"]
    if hw is None:
        from fleet.hw_state import read_hw_state

        hw = read_hw_state(cfg)
    reachable = None if hw.get("stale") else (hw.get("models") or {}).get("server_reachable")
    in_use = providers_in_use(cfg)
    unavailable = [n for n in in_use if n in open_ or (
        reachable is False and (cfg["providers"].get(n) or {}).get("type") == "ollama")]
    problem = None
    if in_use and unavailable:
        why = [f"{n}: " + ("circuit breaker open" if n in open_ else "the local model server is not reachable")
               for n in unavailable]
        every = len(unavailable) == len(in_use)
        lead = "no model provider can answer" if every else "some model providers cannot answer"
        problem = f"{lead} ({'; '.join(why)})"
    waiting = queued_needing_model(cfg, store, catalogue) if problem else 0
    if problem and not waiting:
        problem += "; no queued task needs a model, so the fleet is not degraded by it"
    return {"status": "degraded" if problem and waiting else "healthy", "providers": providers,
            "open_breakers": open_, "server_reachable": reachable, "unavailable": unavailable,
            "problem": problem, "queued_needing_model": waiting, "rule": RULE}
