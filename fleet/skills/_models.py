"""Model routing: `call_model(...)` is the only way skills reach a model. It
walks the fallback chain (config default, per-skill override), honours
offline/air-gap mode and LOCAL_ONLY skills, the shared breakers, cool-downs,
rate headroom and spacing (fleet/store/usage.py), budgets (fleet/costs.py),
and writes one usage row per request before it returns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

from fleet.costs import (
    BudgetExceeded,
    budget_checks,
    call_cost,
    estimate_cost,
    exceeded_error,
    price_for,
)
from fleet.providers.base import (
    BREAKER_KINDS,
    ChatRequest,
    Provider,
    ProviderError,
    provider_class,
)

log = logging.getLogger("fleet.models")


__all__ = [
    "BudgetExceeded",
    "ModelContextOverflow",
    "ModelError",
    "ModelOutputInvalid",
    "ModelRequestError",
    "ModelResult",
    "NoProviderAvailable",
    "ProviderBusy",
    "call_model",
    "get_provider",
    "resolve_chain",
]


class ModelError(RuntimeError):
    """A model call failed; the message says what happened and what to do."""

    def __init__(self, message: str, trail: list[dict] | None = None):
        super().__init__(message)
        self.trail = trail or []


class NoProviderAvailable(ModelError):
    """Every provider in the chain failed, was refused or is not configured."""


class ProviderBusy(NoProviderAvailable):
    """Every provider that could serve the call is only busy for now (a
    Retry-After cool-down, its rate headroom, or an open circuit breaker) and
    none frees up within the call's own wait ([models] wait_in_call_s).
    `retry_at` (epoch s): when the first frees up. A worker reschedules the
    task then (`defer_until`) without using an attempt, within [models]
    max_wait_s; any other caller gets the message."""

    def __init__(self, message: str, trail: list[dict] | None = None, *, retry_at: float):
        super().__init__(message, trail)
        self.retry_at = self.defer_until = retry_at


class ModelRequestError(ModelError):
    """The provider rejected the request itself (HTTP 400); retrying elsewhere would not help."""

    retryable = False
    fail_reason = "bad_request"


class ModelContextOverflow(ModelRequestError):
    """The prompt does not fit the context of any provider in the chain.
    `context_tokens`: the largest context a provider reported (None: unknown)."""

    fail_reason = "context_overflow"

    def __init__(self, message: str, trail: list[dict] | None = None, *, context_tokens: int | None = None):
        super().__init__(message, trail)
        self.context_tokens = context_tokens


class ModelOutputInvalid(ModelError):
    """A JSON reply was asked for and the model's output is not valid JSON for the schema."""

    def __init__(self, message: str, text: str, result: ModelResult):
        super().__init__(message, result.trail)
        self.text, self.result = text, result


@dataclasses.dataclass
class ModelResult:
    text: str
    provider: str
    model: str
    json: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    cache_savings_usd: float = 0.0
    latency_ms: float = 0.0
    stop_reason: str | None = None  # 'length' / 'max_tokens': the reply was cut off at max_tokens
    trail: list[dict] = dataclasses.field(default_factory=list)  # failed/skipped hops before this one
    call_id: str = ""
    budget_warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def failover_from(self) -> str | None:
        return self.trail[-1]["provider"] if self.trail else None

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- per-process caches ------------------------------------------------------------
_lock = threading.Lock()
_providers: dict[tuple, Provider] = {}
_skill_flags: dict[tuple, tuple[float, dict]] = {}
_learned_context: dict[tuple[str, str], int] = {}  # (provider, model) -> n_ctx a context overflow reported


def _store(cfg: dict):
    from fleet.db import shared_store

    return shared_store(cfg)


def get_provider(cfg: dict, name: str) -> Provider:
    """The Provider for `[providers.NAME]` (cached per process and settings)."""
    settings = cfg["providers"].get(name)
    if settings is None:
        configured = ", ".join(sorted(cfg["providers"])) or "(none)"
        raise ProviderError("unconfigured", f"no provider named {name!r} in [providers] of fleet.toml "
                                            f"(configured: {configured})")
    key = (name, json.dumps(settings, sort_keys=True, default=str), cfg["home"], cfg["paths"]["hw_state"])
    provider = _providers.get(key)
    if provider is None:
        provider = provider_class(settings["type"])(name, settings, cfg)
        with _lock:
            _providers[key] = provider
    return provider


_MODEL_CALL_MARKERS = ("call_model", "ask_model", "skills._llm", "from fleet.skills._models")


def skills_use_models(cfg: dict, skills: list[str]) -> bool:
    """Whether any of `skills` calls a model: REQUIRES_MODEL, or its source
    goes through the routing layer (summarize has an extractive fallback and
    declares REQUIRES_MODEL = False, yet calls a model when it can)."""
    from pathlib import Path

    from fleet import skill_registry

    catalogue = skill_registry.discover(cfg)
    for name in skills:
        info = catalogue.get(name)
        if info is None:
            continue
        if info.requires_model:
            return True
        try:
            source = Path(info.path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(marker in source for marker in _MODEL_CALL_MARKERS):
            return True
    return False


def preload_providers(cfg: dict) -> list[str]:
    """Import the client code of every provider type the chains name (the
    anthropic SDK above all), skipping cloud ones in offline mode; returns
    the types loaded. Errors are logged, never raised: the first real call
    reports them properly."""
    names = list(cfg["models"]["chain"])
    for chain in cfg["models"]["skill_chains"].values():
        names += list(chain)
    loaded: list[str] = []
    for name in dict.fromkeys(names):
        try:
            p = get_provider(cfg, name)
            if p.type_name in loaded or (p.is_cloud and (cfg["fleet"]["offline_mode"] or cfg["fleet"]["air_gap_mode"])):
                continue
            t0 = time.perf_counter()
            type(p).preload()
            loaded.append(p.type_name)
            log.debug("preloaded %s's client in %.2f s", p.type_name, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - a missing SDK shows in the first call's error
            log.warning("could not preload the client of provider %s: %s", name, exc)
    return loaded


def _skill_local_only(cfg: dict, skill: str | None) -> bool:
    """Whether `skill` declares LOCAL_ONLY = True (read from its source, cached 30 s)."""
    if not skill:
        return False
    from fleet import skill_registry

    key = tuple(str(d) for d in skill_registry.skill_dirs(cfg))
    hit = _skill_flags.get(key)
    if hit is None or time.monotonic() - hit[0] > 30.0:
        catalogue = {n: i.local_only for n, i in skill_registry.discover(cfg).items()}
        hit = _skill_flags[key] = (time.monotonic(), catalogue)
    return bool(hit[1].get(skill, False))


def _config(config: dict | None) -> dict:
    if config and "providers" in config and "paths" in config and "models" in config:
        return config
    from fleet.config import load_config

    return load_config()


def resolve_chain(cfg: dict, *, provider: str | list[str] | None = None, skill: str | None = None) -> list[str]:
    """Provider names to try, in order. `provider` may name a provider, a
    provider type, 'local' (every local provider) or be a list of names."""
    providers = cfg["providers"]
    default = list(cfg["models"]["skill_chains"].get(skill) or cfg["models"]["chain"])
    ordered = default + [n for n in providers if n not in default]
    if provider is None:
        return default
    if isinstance(provider, (list, tuple)):
        return list(provider)
    if provider in providers:
        return [provider]
    if provider == "local":
        names = [n for n in ordered if n in providers and not _is_cloud_safe(cfg, n)]
    else:
        names = [n for n in ordered if n in providers and providers[n]["type"] == provider]
    return names or [provider]


def _is_cloud_safe(cfg: dict, name: str) -> bool:
    try:
        return get_provider(cfg, name).is_cloud
    except ProviderError:
        return True


def _messages(prompt_or_messages: Any, system: str | None) -> tuple[list[dict], str | None]:
    if isinstance(prompt_or_messages, str):
        return [{"role": "user", "content": prompt_or_messages}], system
    if not isinstance(prompt_or_messages, (list, tuple)) or not prompt_or_messages:
        raise ModelRequestError("call_model needs a prompt string or a non-empty list of "
                                "{'role': 'user'|'assistant', 'content': str} messages")
    out, systems = [], [system] if system else []
    for m in prompt_or_messages:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system") \
                or not isinstance(m.get("content"), str):
            raise ModelRequestError(f"bad message {m!r}: each needs role user|assistant|system and string content")
        if m["role"] == "system":
            systems.append(m["content"])
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if not out:
        raise ModelRequestError("call_model got only system messages; add a user message")
    return out, "\n\n".join(systems) or None


def _context(task_id: int | None) -> tuple[int | None, str | None]:
    """(task id, agent name) from the arguments or the process's logging context."""
    from fleet.logs import current_context

    log_task, process = current_context()
    agent = process or os.environ.get("FLEET_AGENT") or None
    return (log_task if task_id is None else task_id), agent


def _parse_json(text: str) -> Any:
    cleaned = text.strip()
    if cleaned.startswith("```"):
        cleaned = cleaned.split("\n", 1)[1] if "\n" in cleaned else ""
        cleaned = cleaned.rsplit("```", 1)[0]
    try:
        return json.loads(cleaned)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(cleaned):
        if ch in "{[":
            try:
                return decoder.raw_decode(cleaned[i:])[0]
            except ValueError:
                continue
    raise ValueError("no JSON value in the model's reply")


def _clamp(value: float | None, cfg: dict) -> float:
    m = cfg["models"]
    v = m["retry_after_default_s"] if value is None else value
    return min(max(v, m["retry_after_min_s"]), m["retry_after_max_s"])


# Reasons that say a provider is up but busy: its "how to fix" (start it,
# set its key) would be wrong advice.
_BUSY = ("rate_limit", "cooldown", "breaker_open", "rate_headroom")
_REFUSED = ("offline", "local_only")
# Transport failures where no server answered at all: advice to start it fits.
_NOTHING_THERE = ("refused", "connect_timeout", "dns", "other")
_ANSWERED_ADVICE = {
    "server": "the server is up but failing: see its log",
    "request_failed": "the server is up; it could not satisfy this request",
    "context_overflow": "the prompt does not fit its context: shorten the input, or add a provider with a "
                        "larger context to the chain",
    "model_missing": "the server is up but does not serve this model: pull/load it or fix the model name",
    "timeout": "the server is up but slow: check its load, or raise its timeout_s",
    "reset": "the server dropped the connection mid-reply: see its log (it may have crashed)",
}


def _answered(hop: dict) -> bool:
    """Whether a server took this hop's request and answered (or failed mid-reply)."""
    reason = hop["reason"]
    if reason in _BUSY or reason in _REFUSED or reason in ("unconfigured", "auth", "context_too_small"):
        return False
    return not (reason == "transport" and hop.get("cause") in _NOTHING_THERE)


def _busy_line(hop: dict) -> str:
    wait = max(0.0, hop["until"] - time.time())
    if hop["reason"] == "breaker_open":
        last = hop.get("last_error") or "unknown"
        hint = f"; {hop['hint']}" if hop.get("hint") else ""
        return (f"{hop['provider']}: circuit breaker open after repeated failures (last error: {last}{hint}); "
                f"tried again in {wait:.0f} s")
    what = {"rate_limit": "rate-limited by the server", "cooldown": "cooling down after a 429",
            "rate_headroom": "at its [providers] rpm/rpd headroom"}[hop["reason"]]
    return f"{hop['provider']}: {what}, free again in {wait:.0f} s"


def _what_to_do(cfg: dict, chain: list[str], trail: list[dict], *, in_call_wait: float | None = None) -> str:
    """The message of a call no provider could serve: what each provider
    said, with advice to start or configure one only where nothing answered."""
    fixes, answered, busy, refused = [], [], [], []
    for hop in trail:
        reason = hop["reason"]
        if reason in _REFUSED:
            refused.append(hop["error"])
        elif reason in _BUSY:
            busy.append(hop)
        elif _answered(hop):
            answered.append(hop)
        elif reason != "context_too_small":
            fix = hop.get("fix") if reason != "auth" else f"{hop.get('fix')} (it refused the key: {hop['error']})"
            if fix and fix not in fixes:
                fixes.append(fix)
    if answered:
        head = "no model provider could serve the call"
    elif busy and not fixes:
        head = "no model provider is free now"
    else:
        head = "no model provider reachable"
    parts = []
    if fixes:
        parts.append(" or ".join(fixes))
    for hop in answered:
        cause = hop.get("cause") if hop["reason"] == "transport" else hop["reason"]
        advice = _ANSWERED_ADVICE.get(cause, "")
        parts.append(f"{'also, ' if parts else ''}{hop['error']}" + (f" ({advice})" if advice else ""))
    if busy:
        first = max(0.0, min(h["until"] for h in busy) - time.time())
        m = cfg["models"]
        waits = (f"longer than this call waits ([models] wait_in_call_s = {in_call_wait:g} s); a fleet task "
                 f"is rescheduled for then without using an attempt, up to [models] max_wait_s "
                 f"({m['max_wait_s']:g} s) in all" if in_call_wait is not None and in_call_wait < m["max_wait_s"]
                 else f"longer than [models] max_wait_s ({m['max_wait_s']:g} s): retry then, or raise max_wait_s")
        parts.append(f"{'also, ' if parts else ''}the providers left are busy (rate-limited, cooling "
                     "down, or paused by their circuit breaker after failures): "
                     + "; ".join(_busy_line(h) for h in busy)
                     + f"; the first is free again in {first:.0f} s, {waits}")
    if refused and not fixes and not answered:
        parts.append("; ".join(refused) + "; add a local provider (ollama) to [models] chain")
    elif refused:
        parts.append("(" + "; ".join(refused) + ")")
    tried = "; ".join(f"{h['provider']}: {h['reason']} ({h['error']})" for h in trail) or "empty chain"
    return f"{head}: {' '.join(parts) or 'configure [models] chain'} [tried: {tried}]"


def _known_context(p: Provider, model: str) -> int | None:
    """The context size of `model` on `p` when known: Ollama's num_ctx, or
    what an earlier overflow on that server reported."""
    if p.type_name == "ollama" and p.settings["num_ctx"]:
        return int(p.settings["num_ctx"])
    return _learned_context.get((p.name, model))


def _breaker_details(store, p: Provider) -> tuple[str | None, str]:
    """(last error, hint) of a provider whose breaker is open."""
    try:
        last = next((s["last_error"] for s in store.provider_states() if s["provider"] == p.name), None)
    except Exception:  # noqa: BLE001 - a status read must not break the call
        last = None
    if last and ("nothing listens" in last or "does not resolve" in last or "connection timed out" in last):
        return last, p.how_to_fix()
    return last, f"check {p.base_url} and its log"


def call_model(prompt_or_messages, config: dict | None, *, provider: str | list[str] | None = None,
               model: str | None = None, system: str | None = None, max_tokens: int | None = None,
               temperature: float | None = None, json_schema: dict | None = None, skill: str | None = None,
               task_id: int | None = None) -> ModelResult:
    """Send one chat request through the fallback chain and return a ModelResult.

    Raises NoProviderAvailable (what to start or set is in the message),
    ModelRequestError (HTTP 400), ModelOutputInvalid (bad JSON for
    `json_schema`) or BudgetExceeded (a 'block' budget is spent: the task must
    FAIL with its message)."""
    cfg = _config(config)
    messages, system = _messages(prompt_or_messages, system)
    chain = resolve_chain(cfg, provider=provider, skill=skill)
    offline = bool(cfg["fleet"]["offline_mode"] or cfg["fleet"]["air_gap_mode"])
    local_only = _skill_local_only(cfg, skill)
    store = _store(cfg)
    task_id, agent = _context(task_id)
    mcfg = cfg["models"]
    max_tokens = int(max_tokens or mcfg["max_tokens"])
    checks = budget_checks(cfg, skill)
    call_id = uuid.uuid4().hex[:16]
    prompt_chars = sum(len(m["content"]) for m in messages) + len(system or "")
    started = time.monotonic()
    trail: list[dict] = []
    warnings_: list[str] = []
    overflowed: int | None = None  # the largest context that overflowed in this call (tokens; 0: unknown)
    in_call_wait = min(float(mcfg["wait_in_call_s"]), float(mcfg["max_wait_s"]))

    while True:
        pass_trail: list[dict] = []
        for name in chain:
            hop = {"provider": name, "model": model, "reason": "", "error": "", "sent": False}
            try:
                p = get_provider(cfg, name)
            except ProviderError as exc:
                pass_trail.append(dict(hop, reason="unconfigured", error=str(exc)))
                continue
            hop["fix"] = p.how_to_fix()
            if p.is_cloud and offline:
                why = f"offline mode: {name} refused"
                if p.cloud_by_default is None:  # judged by its host, which may be the operator's own
                    why += (f" ({p.base_url} is not on this machine or a private network; if that server is "
                            f"yours, set locality = \"local\" in [providers.{name}])")
                pass_trail.append(dict(hop, reason="offline", error=why, fix=None))
                continue
            if p.is_cloud and local_only:
                pass_trail.append(dict(hop, reason="local_only",
                                       error=f"skill {skill} is LOCAL_ONLY: {name} refused", fix=None))
                continue
            missing = p.missing_configuration()
            if missing:
                pass_trail.append(dict(hop, reason="unconfigured", error=missing))
                continue
            use_model = p.resolve_model(model)
            hop["model"] = use_model
            known = _known_context(p, use_model)
            if overflowed is not None and known is not None and known <= overflowed:
                pass_trail.append(dict(hop, reason="context_too_small", fix=None,
                                       error=f"{name}: its context ({known} tokens) is no larger than the "
                                             f"{overflowed} tokens that overflowed"))
                continue
            price = price_for(cfg, use_model, local=not p.is_cloud)
            reservation = None
            if checks:
                res = store.reserve_budget(checks, skill=skill, usd=estimate_cost(price, prompt_chars, max_tokens),
                                           ttl_s=p.timeout_s + 60.0)
                if res["blocked"]:
                    raise exceeded_error(res["blocked"], skill)
                reservation = res["id"]
                for w in res["warnings"]:
                    warnings_.append(_budget_warning(store, w, skill))
            s = p.settings
            admit = store.admit_provider_request(
                name, rpm=int(s["rpm"]), rpd=int(s["rpd"]), headroom=float(s["headroom"]),
                spacing_s=float(s["min_spacing_ms"]) / 1000.0, probe_lease_s=p.timeout_s + 5.0)
            if not admit["ok"]:
                if reservation is not None:
                    store.release_budget(reservation)
                wait = max(0.0, admit["until"] - time.time())
                busy_hop = dict(hop, reason=admit["reason"], until=admit["until"],
                                error=f"{admit['reason'].replace('_', ' ')} for {wait:.1f} s")
                if admit["reason"] == "breaker_open":
                    last, hint = _breaker_details(store, p)
                    busy_hop.update(last_error=last, hint=hint,
                                    error=f"circuit breaker open for {wait:.1f} s (last error: {last or 'unknown'})")
                pass_trail.append(busy_hop)
                continue
            if admit["wait_s"] > 0:
                time.sleep(admit["wait_s"])
            prev = (trail + pass_trail)[-1] if (trail or pass_trail) else None
            request = ChatRequest(messages=messages, model=use_model, system=system, max_tokens=max_tokens,
                                  temperature=temperature, json_schema=json_schema)
            hop_row = {"call_id": call_id, "task_id": task_id, "skill": skill, "agent": agent, "provider": name,
                       "model": use_model, "failover_from": prev["provider"] if prev else None}
            t0 = time.perf_counter()
            try:
                completion = _complete(p, request)
            except ProviderError as exc:
                kind = exc.kind if exc.kind != "unconfigured" else "auth"
                cooldown = _clamp(exc.retry_after, cfg) if kind == "rate_limit" else 0.0
                store.record_model_call(
                    _usage(hop_row, t0, success=False, reason=kind, error=str(exc)[:1000]),
                    outcome={"kind": kind, "breaker": kind in BREAKER_KINDS,
                             "breaker_failures": mcfg["breaker_failures"], "breaker_open_s": mcfg["breaker_open_s"],
                             "cooldown_s": cooldown, "error": str(exc)[:500]},
                    release_reservation=reservation)
                log.warning("model call %s to %s/%s failed (%s): %s", call_id, name, use_model, kind, exc)
                if kind == "bad_request":
                    raise ModelRequestError(f"{exc} (the request was rejected; fix the prompt or parameters)",
                                            trail + pass_trail) from None
                extra: dict = {}
                if kind == "rate_limit":
                    extra = {"cooldown_s": cooldown, "until": time.time() + cooldown}
                elif kind == "transport":
                    extra = {"cause": exc.cause}
                elif kind == "context_overflow":
                    extra = {"context_tokens": exc.context_tokens, "prompt_tokens": exc.prompt_tokens}
                    if exc.context_tokens:
                        with _lock:
                            _learned_context[(name, use_model)] = int(exc.context_tokens)
                    overflowed = max(overflowed or 0, exc.context_tokens or known or 0)
                pass_trail.append(dict(hop, reason=kind, error=str(exc)[:300], sent=True, status=exc.status,
                                       **extra))
                continue
            except BaseException as exc:
                # Interrupted while the request was out (the task was cancelled
                # or lost its lease, Ctrl-C): still account for it, give the
                # budget reservation back and free a half-open probe slot.
                store.record_model_call(
                    _usage(hop_row, t0, success=False, reason="interrupted",
                           error=f"the call was interrupted ({type(exc).__name__})"),
                    outcome={"kind": "interrupted"}, release_reservation=reservation)
                raise
            cost, savings = call_cost(price, input_tokens=completion.input_tokens,
                                      output_tokens=completion.output_tokens,
                                      cache_read=completion.cache_read_tokens, cache_write=completion.cache_write_tokens)
            row = _usage(hop_row, t0, model=completion.model, input_tokens=completion.input_tokens,
                         output_tokens=completion.output_tokens, cache_read_tokens=completion.cache_read_tokens,
                         cache_write_tokens=completion.cache_write_tokens, cost_usd=cost, cache_savings_usd=savings,
                         success=True, reason=prev["reason"] if prev else None)
            latency = row["latency_ms"]
            store.record_model_call(row, outcome={"kind": None}, release_reservation=reservation)
            result = ModelResult(
                text=completion.text, provider=name, model=completion.model, input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens, cache_read_tokens=completion.cache_read_tokens,
                cache_write_tokens=completion.cache_write_tokens, cost_usd=cost, cache_savings_usd=savings,
                latency_ms=latency, trail=[_public(h) for h in trail + pass_trail], call_id=call_id,
                budget_warnings=warnings_, stop_reason=completion.stop_reason)
            if json_schema is not None:
                result.json = _checked_json(completion.text, json_schema, result, max_tokens, mcfg["max_tokens"])
            return result
        trail += pass_trail
        sent = [h for h in pass_trail if h["reason"] not in _REFUSED + ("unconfigured", "context_too_small")]
        if sent and all(h["reason"] in ("context_overflow", "context_too_small") for h in pass_trail
                        if h["reason"] not in _REFUSED + ("unconfigured",)) \
                and any(h["reason"] == "context_overflow" for h in pass_trail):
            sizes = [h["context_tokens"] for h in pass_trail if h.get("context_tokens")]
            need = max((h["prompt_tokens"] for h in pass_trail if h.get("prompt_tokens")), default=None)
            raise ModelContextOverflow(
                "the prompt does not fit the context of any provider in the chain"
                + (f" (it needs {need} tokens; the largest context is {max(sizes)})" if need and sizes else "")
                + ": shorten the input, split it, or add a provider with a larger context to the chain "
                  f"[tried: {'; '.join(h['provider'] + ': ' + h['error'] for h in pass_trail)}]",
                [_public(h) for h in trail], context_tokens=max(sizes) if sizes else None)
        # A usable provider is only busy (cool-down, breaker, headroom, a 429)?
        # Then wait for the first to free up, within [models] wait_in_call_s;
        # beyond that the task is given back to the queue until then.
        busy = [h for h in pass_trail if "until" in h]
        if busy:
            # (already past when the pass itself took longer: try again at once)
            first = min(h["until"] for h in busy)
            pause = max(0.0, first - time.time() + 0.01)
            if pause <= in_call_wait - (time.monotonic() - started):
                time.sleep(pause)
                continue
            raise ProviderBusy(_what_to_do(cfg, chain, trail, in_call_wait=in_call_wait),
                               [_public(h) for h in trail], retry_at=first)
        raise NoProviderAvailable(_what_to_do(cfg, chain, trail), [_public(h) for h in trail])


def _usage(hop_row: dict, t0: float, **fields) -> dict:
    """A usage row for one hop: what every row names, its latency, `fields`."""
    return {**hop_row, "latency_ms": (time.perf_counter() - t0) * 1000.0, **fields}


def _complete(p, request: ChatRequest):
    """The provider's answer; a reply its code could not read (a proxy's
    odd body, an SDK that chokes on it) is that server failing, so the call
    fails over instead of raising a bare exception. The traceback is logged:
    a bug of ours shows there."""
    try:
        return p.complete(request)
    except ProviderError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified, logged, and failed over
        log.warning("%s: unreadable reply", p.name, exc_info=True)
        raise ProviderError("server", f"{p.name}: the reply could not be read "
                                      f"({type(exc).__name__}: {str(exc)[:200]})") from exc


def _public(hop: dict) -> dict:
    return {k: v for k, v in hop.items() if k not in ("fix", "hint")}


def _checked_json(text: str, schema: dict, result: ModelResult, max_tokens: int, default_max: int) -> Any:
    import jsonschema

    try:
        value = _parse_json(text)
        jsonschema.validate(value, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        msg = exc.message if isinstance(exc, jsonschema.ValidationError) else str(exc)
        if result.stop_reason in ("length", "max_tokens"):
            raise ModelOutputInvalid(
                f"{result.provider}/{result.model} stopped at the output token limit ({result.output_tokens} "
                f"tokens, stop reason {result.stop_reason!r}), so its JSON is cut off ({msg}); raise max_tokens "
                f"(this call asked for {max_tokens}; the default is [models] max_tokens = {default_max})",
                text, result) from None
        raise ModelOutputInvalid(f"{result.provider}/{result.model} returned output that is not valid JSON for "
                                 f"the schema: {msg}; retry, or use a stronger model", text, result) from None
    return value


def _budget_warning(store, figures: dict, skill: str | None) -> str:
    message = str(exceeded_error(figures, skill)).replace("budget exceeded", "budget warning: over budget", 1)
    log.warning(message)
    try:
        store.raise_alert("warning", "budget", message,
                          dedup_key=f"budget:{figures['name']}:{int(figures['since'])}")
    except Exception:  # an alert must never break the call
        log.exception("could not raise the budget alert")
    return message
