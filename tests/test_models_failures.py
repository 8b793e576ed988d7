"""Honest failures of model routing against loopback servers that speak the
real protocols (issue 16): a server that answers is not "unreachable", the
breaker judges the server and not one request, an open breaker says why,
busy providers reschedule a task instead of dead-lettering it, a context
overflow fails over (and summarize chunks or extracts), and a reply cut off
at max_tokens says so."""

from __future__ import annotations

import time

import pytest
from fakes.model_servers import (
    FakeAnthropic,
    FakeOllama,
    FakeOpenAI,
    Reply,
    dead_url,
    provider_toml,
    write_model_config,
)

from fleet.config import load_config
from fleet.db import open_store
from fleet.skills._models import (
    ModelContextOverflow,
    ModelOutputInvalid,
    ModelRequestError,
    NoProviderAvailable,
    ProviderBusy,
    call_model,
)


def _one(home, url, *, name="llama", extra_models="", **settings):
    write_model_config(home, chain=[name], models=extra_models,
                       providers=[provider_toml(name, "openai_compatible", url, model="tiny", min_spacing_ms=0,
                                                **settings)])
    return load_config(home)


def _breaker(cfg, name="llama") -> str:
    states = {s["provider"]: s for s in open_store(cfg).provider_states()}
    return states[name]["breaker"] if name in states else "closed"


# -- 1. a server that answers is not "unreachable" ------------------------------------
def test_http_500_names_the_status_and_the_servers_message_not_start_it(isolated_home):
    with FakeOpenAI() as server:
        cfg = _one(isolated_home, server.url)
        server.fail(500, "slot 0: the KV cache is corrupted")
        with pytest.raises(NoProviderAvailable) as info:
            call_model("q", cfg)
    text = str(info.value)
    assert "HTTP 500" in text and "the KV cache is corrupted" in text
    assert "start the OpenAI-compatible server" not in text and "reachable" not in text
    assert text.startswith("no model provider could serve the call: llama: HTTP 500")
    assert "see its log" in text


def test_nothing_listening_is_the_only_case_that_says_start_it(isolated_home):
    url = dead_url()
    cfg = _one(isolated_home, url)
    with pytest.raises(NoProviderAvailable) as info:
        call_model("q", cfg)
    text = str(info.value)
    assert text.startswith(f"no model provider reachable: start the OpenAI-compatible server at {url}")
    assert "nothing listens there" in text


def test_a_reply_timeout_says_the_server_is_slow_not_absent(isolated_home):
    with FakeOpenAI() as server:
        cfg = _one(isolated_home, server.url, timeout_s=0.3)
        server.enqueue(Reply(text="late", delay_s=1.5))
        with pytest.raises(NoProviderAvailable) as info:
            call_model("q", cfg)
    text = str(info.value)
    assert "sent no reply within 0.3 s" in text and "raise its timeout_s" in text
    assert "start the OpenAI-compatible server" not in text
    assert info.value.trail[0]["cause"] == "timeout"


# -- 2. the breaker judges the server, not one request ------------------------------
@pytest.mark.parametrize("status,message", [
    (400, "invalid 'temperature': must be at most 2"),
    (422, "unprocessable: messages[0].content must be a string"),
    (500, "failed to parse grammar: expected ':' at pos 17"),
    (500, "Failed to parse input at pos 0: the output does not match the json_schema"),
    (500, "the request could not be satisfied with the given response_format"),
])
def test_request_specific_rejections_never_open_the_breaker(isolated_home, status, message):
    with FakeOpenAI() as server:
        cfg = _one(isolated_home, server.url)
        for _ in range(5):  # more than breaker_failures (3)
            server.fail(status, message)
            with pytest.raises((NoProviderAvailable, ModelRequestError)) as info:
                call_model("q", cfg)
            assert not isinstance(info.value, ProviderBusy)
            assert message in str(info.value)
        assert _breaker(cfg) == "closed"
        server.reply("fine")
        assert call_model("q", cfg).text == "fine"  # the next task's call is served at once


def test_context_overflows_never_open_the_breaker(isolated_home):
    with FakeOpenAI(n_ctx=8) as server:
        cfg = _one(isolated_home, server.url)
        for _ in range(4):
            with pytest.raises(ModelContextOverflow):
                call_model("one two three four five six seven eight nine ten eleven", cfg)
        assert _breaker(cfg) == "closed"
        assert call_model("short", cfg).text == "ok"


def _three_failed_calls(cfg) -> None:
    for _ in range(3):  # breaker_failures
        with pytest.raises(NoProviderAvailable):
            call_model("q", cfg)


@pytest.mark.parametrize("how", ["503", "502", "500", "timeout", "refused", "dropped"])
def test_an_unwell_server_opens_the_breaker(isolated_home, how):
    with FakeOpenAI() as server:
        url = dead_url() if how == "refused" else server.url
        cfg = _one(isolated_home, url, timeout_s=0.3)
        if how in ("503", "502"):
            server.fail(int(how), "upstream unavailable", times=3)
        elif how == "500":  # a 500 that does not blame the request
            server.fail(500, "CUDA error: out of memory", times=3)
        elif how in ("timeout", "dropped"):
            server.enqueue(*[Reply(delay_s=1.0) if how == "timeout" else Reply(drop=True)] * 3)
        _three_failed_calls(cfg)
        assert _breaker(cfg) == "open"


# -- 3. an open breaker's message says why ------------------------------------------
def test_open_breaker_message_has_last_error_hint_and_retry_time(isolated_home):
    url = dead_url()
    cfg = _one(isolated_home, url)
    _three_failed_calls(cfg)
    with pytest.raises(ProviderBusy) as info:
        call_model("q", cfg)
    text = str(info.value)
    assert "circuit breaker open after repeated failures" in text
    assert f"last error: llama: cannot reach {url}: nothing listens there" in text
    assert f"start the OpenAI-compatible server at {url}" in text
    assert "tried again in 30 s" in text or "tried again in 29 s" in text
    assert info.value.retry_at == pytest.approx(time.time() + 30, abs=2)


def test_open_breaker_of_a_server_that_answers_says_check_it_not_start_it(isolated_home):
    with FakeOpenAI() as server:
        cfg = _one(isolated_home, server.url)
        server.fail(503, "loading model", times=3)
        _three_failed_calls(cfg)
        with pytest.raises(ProviderBusy) as info:
            call_model("q", cfg)
    text = str(info.value)
    assert "last error: llama: HTTP 503: loading model" in text
    assert f"check {server.url} and its log" in text and "start the OpenAI" not in text


# -- 4. busy providers: wait in the call, else reschedule through the worker ---------------
def test_call_raises_provider_busy_with_the_free_time_beyond_its_own_wait(isolated_home):
    with FakeOpenAI() as server:
        cfg = _one(isolated_home, server.url, extra_models="wait_in_call_s = 0.5")
        text = (isolated_home / "fleet.toml").read_text().replace("max_wait_s = 0.0", "max_wait_s = 300.0")
        (isolated_home / "fleet.toml").write_text(text)
        cfg = load_config(isolated_home)
        server.fail(429, "slow down", retry_after=20)
        t0 = time.monotonic()
        with pytest.raises(ProviderBusy) as info:
            call_model("q", cfg)
        assert time.monotonic() - t0 < 5  # did not sleep out the 20 s
    assert info.value.retry_at == pytest.approx(time.time() + 20, abs=2)
    message = str(info.value)
    assert "wait_in_call_s = 0.5 s" in message and "rescheduled" in message and "max_wait_s (300 s)" in message


def _run_pricey_task(home, ollama, *, max_wait_s: float, max_attempts: int, replies) -> tuple:
    """One `pricey` task (a model call) through a real worker process against
    `ollama`, which first answers `replies`; returns (store, finished task)."""
    import tomlkit
    from fakes.fleetproc import start_worker, stop, wait_until, write_config

    write_config(home, affinity={"coder": ["pricey"]})
    doc = tomlkit.parse((home / "fleet.toml").read_text())
    doc["models"] = {"chain": ["ollama"], "max_wait_s": max_wait_s, "wait_in_call_s": 0.0}
    doc["providers"] = {"ollama": {"type": "ollama", "base_url": ollama.url}}
    (home / "fleet.toml").write_text(tomlkit.dumps(doc))
    ollama.enqueue(*replies)
    store = open_store(load_config(home))
    task = store.enqueue("pricey", {"q": "hi"}, max_attempts=max_attempts)
    worker = start_worker(home, "coder", "coder_1")
    try:
        wait_until(lambda: store.get(task.id).status in ("DONE", "FAILED"), 60, what="task finished")
    finally:
        stop(worker)
    return store, store.get(task.id)


_BUSY_3S = Reply(status=429, message="too many requests", retry_after=3)


def test_worker_reschedules_at_the_cool_down_without_using_an_attempt(isolated_home):
    with FakeOllama() as ollama:
        store, done = _run_pricey_task(isolated_home, ollama, max_wait_s=60.0, max_attempts=1,
                                       replies=[_BUSY_3S, Reply(text="served after the cool-down")])
        chat = ollama.requests_to("/api/chat")
    assert done.status == "DONE", done.error
    assert done.result == {"text": "served after the cool-down"} and done.attempts == 1
    attempts = store.attempts(done.id)
    assert [a["outcome"] for a in attempts] == ["deferred", "done"]
    assert "free again in" in attempts[0]["error"]
    assert len(chat) == 2 and chat[1].time - chat[0].time >= 2.5  # the retry waited for the cool-down
    store.close()


def test_worker_gives_up_past_max_wait_s_with_the_reason(isolated_home):
    with FakeOllama() as ollama:
        store, failed = _run_pricey_task(isolated_home, ollama, max_wait_s=5.0, max_attempts=3,
                                         replies=[_BUSY_3S, _BUSY_3S])
    assert failed.status == "FAILED" and failed.error_reason == "provider_busy"
    assert "max_wait_s (5 s)" in failed.error and "rate-limited by the server" in failed.error
    assert [a["outcome"] for a in store.attempts(failed.id)] == ["deferred", "provider_busy"]
    assert failed.attempts == 1  # the deferral used none
    store.close()


# -- 5. context overflow fails over to a larger context --------------------------------
def test_context_overflow_fails_over_to_a_provider_with_a_larger_context(isolated_home):
    with FakeOpenAI(n_ctx=6) as small, FakeOpenAI(n_ctx=200) as big:
        write_model_config(isolated_home, chain=["small", "big"], providers=[
            provider_toml("small", "openai_compatible", small.url, model="tiny", min_spacing_ms=0),
            provider_toml("big", "openai_compatible", big.url, model="large", min_spacing_ms=0)])
        cfg = load_config(isolated_home)
        big.reply("summary from the big one")
        result = call_model("a prompt of rather more than six words in all", cfg)
    assert result.provider == "big" and result.text == "summary from the big one"
    hop = result.trail[0]
    assert (hop["provider"], hop["reason"], hop["status"], hop["context_tokens"]) == \
        ("small", "context_overflow", 400, 6)
    assert "exceeds the available context size (6 tokens)" in hop["error"]


def test_every_context_too_small_is_one_clear_error_and_skips_known_smaller(isolated_home):
    with FakeOpenAI(n_ctx=6) as small, FakeOllama() as ollama:
        write_model_config(isolated_home, chain=["small", "local"], providers=[
            provider_toml("small", "openai_compatible", small.url, model="tiny", min_spacing_ms=0),
            provider_toml("local", "ollama", ollama.url, model="m", num_ctx=4)])
        cfg = load_config(isolated_home)
        with pytest.raises(ModelContextOverflow) as info:
            call_model("a prompt of rather more than six words in all", cfg)
        assert ollama.requests_to("/api/chat") == []  # its 4-token context is known to be smaller
    text = str(info.value)
    assert text.startswith("the prompt does not fit the context of any provider in the chain (it needs 10 tokens")
    assert [h["reason"] for h in info.value.trail] == ["context_overflow", "context_too_small"]
    assert info.value.context_tokens == 6 and info.value.retryable is False


def _summarize_cfg(home, url, n_words: int):
    write_model_config(home, chain=["llama"], providers=[
        provider_toml("llama", "openai_compatible", url, model="tiny", min_spacing_ms=0)])
    doc = home / "notes.md"
    doc.write_text("\n\n".join(f"Paragraph {i} says the fleet kept its promise number {i} today."
                               for i in range(n_words // 10)))
    return load_config(home)


def test_summarize_rechunks_to_the_reported_context(isolated_home):
    from fleet.skills import summarize

    with FakeOpenAI(n_ctx=900) as server:
        cfg = _summarize_cfg(isolated_home, server.url, 3000)
        out = summarize.run({"path": "notes.md", "save": False}, cfg, _log())
    assert out["method"] == "model" and out["chunks"] > 1 and out["rechunked_for_context"]
    sent = [len(r.body["messages"][0]["content"].split()) for r in server.requests_to("/v1/chat/completions")]
    assert sent[0] > 900 and len(sent) > 2 and all(n <= 900 for n in sent[1:])  # one overflow, then all fit


def test_summarize_falls_back_to_extractive_when_no_context_fits(isolated_home):
    from fleet.skills import summarize

    with FakeOpenAI(n_ctx=3) as server:
        cfg = _summarize_cfg(isolated_home, server.url, 300)
        out = summarize.run({"path": "notes.md", "save": False}, cfg, _log())
    assert out["method"] == "extractive" and "does not fit the context" in out["model_error"]


def _log():
    import logging

    return logging.getLogger("test.summarize")


# -- 6. a reply cut off at max_tokens ----------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_json_cut_off_at_max_tokens_says_so_and_names_the_setting(isolated_home, kind):
    server = FakeOpenAI() if kind == "openai" else FakeOllama()
    with server:
        type_ = "openai_compatible" if kind == "openai" else "ollama"
        write_model_config(isolated_home, chain=["p"], providers=[
            provider_toml("p", type_, server.url, model="tiny", min_spacing_ms=0)])
        cfg = load_config(isolated_home)
        server.enqueue(Reply(text='{"skill": "summarize", "payload": {"path": "no', finish_reason="length"))
        with pytest.raises(ModelOutputInvalid) as info:
            call_model("q", cfg, json_schema={"type": "object"}, max_tokens=12)
    text = str(info.value)
    assert "stopped at the output token limit" in text and "'length'" in text
    assert "this call asked for 12" in text and "[models] max_tokens = 1024" in text
    assert info.value.result.stop_reason == "length"


# -- 7. preflight checks the protocol's own endpoint ------------------------------------
def _preflight(home, providers: list[str], chain: list[str], models: str = "") -> dict:
    from fleet.preflight import check_providers

    write_model_config(home, chain=chain, providers=providers, models=models)
    return {c["name"]: c for c in check_providers(load_config(home))}


def test_preflight_lists_the_models_an_openai_server_offers(isolated_home):
    with FakeOpenAI(models=["tiny-q4"]) as llama:  # GET / is a 404 there, as on llama-server
        checks = _preflight(isolated_home, [provider_toml("llama", "openai_compatible", llama.url,
                                                          model="tiny-q4")], ["llama"])
        assert [r.path for r in llama.requests] == ["/v1/models"]
    assert checks["provider:llama"]["ok"] and "GET /v1/models lists 1 model(s): tiny-q4" in \
        checks["provider:llama"]["detail"]
    assert checks["provider_models:llama"]["ok"]


def test_preflight_fails_a_server_that_answers_but_not_the_api(isolated_home):
    from fakes.model_servers import FakeServer

    with FakeServer() as other:  # answers every request with 404
        checks = _preflight(isolated_home, [provider_toml("llama", "openai_compatible", other.url)], ["llama"])
    check = checks["provider:llama"]
    assert check["level"] == "fail"
    assert "GET /v1/models gave HTTP 404: it is not an OpenAI-compatible API at this base_url" in check["detail"]


def test_preflight_names_models_the_config_wants_but_the_server_lacks(isolated_home):
    with FakeOllama(models=["qwen3:8b", "qwen3:4b"]) as ollama, FakeOpenAI(models=["served"]) as vllm:
        checks = _preflight(isolated_home, [
            provider_toml("ollama", "ollama", ollama.url, model="llama3.1:70b"),
            provider_toml("vllm", "openai_compatible", vllm.url, model="other-model")],
            ["ollama", "vllm"], models='conductor_provider = "ollama"\nconductor_model = "qwen3:4b"')
    assert "Ollama 0.12.0" in checks["provider:ollama"]["detail"]
    ollama_models = checks["provider_models:ollama"]
    assert ollama_models["level"] == "fail"
    assert "not offered by ollama: llama3.1:70b ([providers.ollama] model)" in ollama_models["detail"]
    assert "offered: qwen3:8b, qwen3:4b; `ollama pull MODEL`" in ollama_models["detail"]
    assert checks["provider_models:vllm"]["level"] == "warn"  # llama.cpp serves its model under any name
    assert "other-model" in checks["provider_models:vllm"]["detail"]


# -- 8. the anthropic SDK is imported when a model-using worker starts ----------------------
def test_model_worker_imports_the_sdk_before_its_first_claim(isolated_home, monkeypatch):
    import tomlkit
    from fakes.fleetproc import start_worker, stop, wait_until, write_config

    from fleet.skills._models import skills_use_models

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with FakeAnthropic(api_key="sk-test") as claude:
        write_config(isolated_home, affinity={"coder": ["pricey"], "plain": ["noop"]})
        doc = tomlkit.parse((isolated_home / "fleet.toml").read_text())
        doc["models"] = {"chain": ["claude"], "max_wait_s": 0.0}
        doc["providers"] = {"claude": {"type": "claude", "base_url": claude.url, "rpm": 0, "min_spacing_ms": 0}}
        (isolated_home / "fleet.toml").write_text(tomlkit.dumps(doc))
        cfg = load_config(isolated_home)
        assert skills_use_models(cfg, ["pricey"]) and skills_use_models(cfg, ["summarize"])
        assert not skills_use_models(cfg, ["noop", "code_quality"])
        store = open_store(cfg)
        workers = [start_worker(isolated_home, "coder", "coder_1"), start_worker(isolated_home, "plain", "plain_1")]
        try:
            wait_until(lambda: all((store.get_agent(n) or {}).get("status") == "idle" for n in ("coder_1", "plain_1")),
                       60, what="workers idle")
            task = store.enqueue("pricey", {"q": "hi"})
            wait_until(lambda: store.get(task.id).status == "DONE", 60, what="task done")
        finally:
            for w in workers:
                stop(w)
        logs = {n: (isolated_home / "logs" / f"{n}.log").read_text() for n in ("coder_1", "plain_1")}
        store.close()
    loaded = [line for line in logs["coder_1"].splitlines() if "model clients loaded before the first claim" in line]
    assert len(loaded) == 1 and "(claude)" in loaded[0]
    assert logs["coder_1"].index("model clients loaded") < logs["coder_1"].index("pricey done")
    assert "model clients loaded" not in logs["plain_1"]
