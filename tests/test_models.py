"""call_model against loopback fakes of Ollama, the Anthropic API (through the
real anthropic SDK) and an OpenAI-compatible server: failover and its trail,
usage rows, costs with cache tokens, offline/air-gap/LOCAL_ONLY refusals with
a socket-level connection count, streaming, options, tier model, JSON output."""

from __future__ import annotations

import json
import time

import pytest
from fakes.model_servers import (
    ConnectionCounter,
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
    ModelOutputInvalid,
    ModelRequestError,
    NoProviderAvailable,
    call_model,
)

KEY = "sk-test-secret-value-123"


@pytest.fixture
def servers(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeOllama(models=["qwen3:8b", "qwen3:4b", "tiny:1b"]) as ollama, \
            FakeAnthropic(api_key=KEY) as claude, FakeOpenAI() as openai:
        yield ollama, claude, openai


def _providers(ollama_url, claude_url, openai_url, **ollama_extra):
    return [provider_toml("ollama", "ollama", ollama_url, **ollama_extra),
            provider_toml("claude", "claude", claude_url, model="claude-sonnet-4-6", min_spacing_ms=0, rpm=0),
            provider_toml("backup", "openai_compatible", openai_url, model="served-model", min_spacing_ms=0)]


def _cfg(home, servers, *, chain=("ollama", "claude", "backup"), models="", extra="", ollama_url=None,
         claude_url=None, **ollama_extra):
    ollama, claude, openai = servers
    write_model_config(home, chain=list(chain), models=models, extra=extra,
                       providers=_providers(ollama_url or ollama.url, claude_url or claude.url, openai.url,
                                            **ollama_extra))
    return load_config(home)


def test_local_call_writes_one_usage_row_before_returning(isolated_home, servers):
    ollama, claude, _ = servers
    cfg = _cfg(isolated_home, servers)
    ollama.reply("four words of reply", usage={"input": 12, "output": 4})
    result = call_model("hello there", cfg, skill="summarize", task_id=42)
    assert (result.text, result.provider, result.model) == ("four words of reply", "ollama", "qwen3:8b")
    assert (result.input_tokens, result.output_tokens, result.cost_usd, result.trail) == (12, 4, 0.0, [])
    rows = open_store(cfg).usage_rows(call_id=result.call_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["task_id"], row["skill"], row["provider"], row["model"], row["success"]) == \
        (42, "summarize", "ollama", "qwen3:8b", 1)
    assert (row["input_tokens"], row["output_tokens"], row["failover_from"]) == (12, 4, None)
    assert claude.request_count == 0
    body = ollama.requests_to("/api/chat")[0].body
    assert body["stream"] is False and body["keep_alive"] == "10m"
    assert body["messages"] == [{"role": "user", "content": "hello there"}]


def test_failover_when_first_provider_is_down_is_in_result_and_usage(isolated_home, servers):
    _, claude, _ = servers
    cfg = _cfg(isolated_home, servers, ollama_url=dead_url())
    claude.reply("from claude", usage={"input": 20, "output": 5})
    result = call_model("summarise this", cfg, skill="summarize")
    assert result.provider == "claude" and result.text == "from claude"
    assert [(h["provider"], h["reason"]) for h in result.trail] == [("ollama", "transport")]
    assert result.failover_from == "ollama"
    rows = open_store(cfg).usage_rows(call_id=result.call_id)
    assert [(r["provider"], r["success"], r["reason"], r["failover_from"]) for r in rows] == [
        ("ollama", 0, "transport", None), ("claude", 1, "transport", "ollama")]
    assert "cannot reach" in rows[0]["error"]


def test_fails_twice_then_succeeds_writes_three_rows_with_classified_reasons(isolated_home, servers):
    ollama, claude, openai = servers
    cfg = _cfg(isolated_home, servers)
    ollama.fail(503, "overloaded")
    claude.fail(429, "slow down", retry_after=5)
    openai.reply("third time lucky", usage={"input": 7, "output": 3})
    result = call_model("q", cfg, skill="s")
    assert result.provider == "backup" and result.text == "third time lucky"
    assert [(h["provider"], h["reason"], h["status"]) for h in result.trail] == [
        ("ollama", "server", 503), ("claude", "rate_limit", 429)]
    rows = open_store(cfg).usage_rows(call_id=result.call_id)
    assert [(r["provider"], r["success"], r["reason"]) for r in rows] == [
        ("ollama", 0, "server"), ("claude", 0, "rate_limit"), ("backup", 1, "rate_limit")]
    assert rows[2]["failover_from"] == "claude"


@pytest.mark.parametrize("status,reason", [(401, "auth"), (403, "auth"), (500, "server"), (404, "model_missing")])
def test_each_failover_status_is_classified(isolated_home, servers, status, reason):
    ollama, claude, _ = servers
    cfg = _cfg(isolated_home, servers)
    ollama.fail(status, "nope")
    claude.reply("served")
    result = call_model("q", cfg)
    assert result.provider == "claude"
    assert result.trail[0]["reason"] == reason


def test_missing_local_model_fails_over(isolated_home, servers):
    _ollama, _claude, _ = servers
    cfg = _cfg(isolated_home, servers, model="not-pulled:7b")
    result = call_model("q", cfg)
    assert result.provider == "claude"
    assert result.trail[0]["reason"] == "model_missing" and "not found" in result.trail[0]["error"]


def test_plain_400_does_not_fail_over(isolated_home, servers):
    ollama, claude, openai = servers
    cfg = _cfg(isolated_home, servers)
    ollama.fail(400, "invalid options")
    with pytest.raises(ModelRequestError, match="invalid options"):
        call_model("q", cfg)
    assert claude.request_count == 0 and openai.request_count == 0
    rows = open_store(cfg).usage_rows()
    assert [(r["provider"], r["success"], r["reason"]) for r in rows] == [("ollama", 0, "bad_request")]


def test_cost_with_cache_tokens_and_savings(isolated_home, servers):
    _, claude, _ = servers
    cfg = _cfg(isolated_home, servers, chain=("claude",))
    claude.reply("cached", usage={"input": 1000, "output": 200, "cache_read": 10000, "cache_write": 2000})
    result = call_model("q", cfg, system="a long stable system prompt")
    # claude-sonnet: input 3, output 15, cache read 0.30, cache write 3.75 USD per Mtok
    expected = (1000 * 3 + 200 * 15 + 10000 * 0.30 + 2000 * 3.75) / 1e6
    assert result.cost_usd == pytest.approx(expected)
    assert result.cache_savings_usd == pytest.approx(10000 * (3 - 0.30) / 1e6)
    assert (result.cache_read_tokens, result.cache_write_tokens) == (10000, 2000)
    row = open_store(cfg).usage_rows(call_id=result.call_id)[0]
    assert row["cost_usd"] == pytest.approx(expected)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (10000, 2000)
    sent = claude.requests_to("/v1/messages")[0].body
    assert sent["system"] == [{"type": "text", "text": "a long stable system prompt",
                               "cache_control": {"type": "ephemeral"}}]


def test_configured_prices_override_defaults(isolated_home, servers):
    _, claude, _ = servers
    cfg = _cfg(isolated_home, servers, chain=("claude",),
               extra='[prices.claude-sonnet-4-6]\ninput = 10.0\noutput = 20.0\ncache_read = 1.0\ncache_write = 0.0\n')
    claude.reply("x", usage={"input": 1_000_000, "output": 1_000_000, "cache_read": 0, "cache_write": 0})
    assert call_model("q", cfg).cost_usd == pytest.approx(30.0)


def test_api_key_never_reaches_usage_rows_results_or_logs(isolated_home, servers, caplog):
    _, claude, _ = servers
    cfg = _cfg(isolated_home, servers, chain=("claude",))
    claude.fail(401, "bad key")
    with pytest.raises(NoProviderAvailable) as info:
        call_model("q", cfg)
    result_text = str(info.value) + json.dumps(info.value.trail)
    rows = json.dumps(open_store(cfg).usage_rows())
    assert KEY not in result_text and KEY not in rows and KEY not in caplog.text
    claude.reply("ok")
    assert KEY not in json.dumps(call_model("q", cfg).to_dict())


def test_missing_key_is_refused_without_a_connection_and_says_what_to_do(isolated_home, servers, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with ConnectionCounter() as counter:
        cfg = _cfg(isolated_home, servers, chain=("ollama", "claude"), ollama_url=dead_url(),
                   claude_url=counter.url)
        with pytest.raises(NoProviderAvailable) as info:
            call_model("q", cfg)
        time.sleep(0.1)
        assert counter.accepted == 0
    message = str(info.value)
    assert message.startswith("no model provider reachable: start Ollama at http://127.0.0.1:")
    assert "set ANTHROPIC_API_KEY (lead_client.py secret set ANTHROPIC_API_KEY -)" in message


def test_secret_from_the_secrets_file_is_used(isolated_home, servers, monkeypatch):
    from fleet.secret_file import set_secret

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    cfg = _cfg(isolated_home, servers, chain=("claude",))
    set_secret(cfg, "ANTHROPIC_API_KEY", KEY)
    assert call_model("q", cfg).provider == "claude"


@pytest.mark.parametrize("mode", ["offline_mode", "air_gap_mode"])
def test_offline_mode_refuses_cloud_with_zero_connections(isolated_home, servers, mode):
    _ollama, _, _ = servers
    with ConnectionCounter() as counter:
        cfg = _cfg(isolated_home, servers, chain=("claude", "ollama"), claude_url=counter.url,
                   extra=f"[fleet]\n{mode} = true\n")
        result = call_model("q", cfg)
        assert result.provider == "ollama"
        assert result.trail == [{"provider": "claude", "model": None, "reason": "offline",
                                 "error": "offline mode: claude refused", "sent": False}]
        cfg_only_cloud = _cfg(isolated_home, servers, chain=("claude",), claude_url=counter.url,
                              extra=f"[fleet]\n{mode} = true\n")
        with pytest.raises(NoProviderAvailable, match="offline mode: claude refused"):
            call_model("q", cfg_only_cloud)
        time.sleep(0.2)
        assert counter.accepted == 0


def test_local_only_skill_never_goes_to_the_cloud(isolated_home, servers):
    skills_dir = isolated_home / "my_skills"
    skills_dir.mkdir()
    (skills_dir / "private_notes.py").write_text(
        'DESCRIPTION = "private"\nLOCAL_ONLY = True\n\ndef run(payload, config, log):\n    return {}\n')
    with ConnectionCounter() as counter:
        cfg = _cfg(isolated_home, servers, chain=("ollama", "claude"), ollama_url=dead_url(),
                   claude_url=counter.url, extra=f'[skills]\nextra_paths = ["{skills_dir}"]\n')
        with pytest.raises(NoProviderAvailable) as info:
            call_model("secret stuff", cfg, skill="private_notes")
        assert "LOCAL_ONLY" in str(info.value)
        assert [h["reason"] for h in info.value.trail] == ["transport", "local_only"]
        time.sleep(0.2)
        assert counter.accepted == 0


def test_explicit_provider_and_type_and_local_alias(isolated_home, servers):
    _ollama, _claude, _openai = servers
    cfg = _cfg(isolated_home, servers)
    assert call_model("q", cfg, provider="backup").provider == "backup"
    assert call_model("q", cfg, provider="claude").provider == "claude"
    assert call_model("q", cfg, provider="openai_compatible").provider == "backup"
    assert call_model("q", cfg, provider="local").provider == "ollama"
    assert call_model("q", cfg, provider="ollama", model="tiny:1b").model == "tiny:1b"


def test_per_skill_chain_override(isolated_home, servers):
    _, _claude, _ = servers
    cfg = _cfg(isolated_home, servers, extra='[models.skill_chains]\ncode_review = ["claude", "ollama"]\n')
    assert call_model("q", cfg, skill="code_review").provider == "claude"
    assert call_model("q", cfg, skill="other").provider == "ollama"


def test_ollama_streaming_options_and_keep_alive(isolated_home, servers):
    ollama, _, _ = servers
    cfg = _cfg(isolated_home, servers, stream=True, num_ctx=8192, num_gpu=20, keep_alive="30m")
    text = "a streamed reply that spans several chunks of the stream"
    ollama.reply(text, usage={"input": 9, "output": 11})
    result = call_model("q", cfg, temperature=0.2, max_tokens=50, system="sys")
    assert (result.text, result.input_tokens, result.output_tokens) == (text, 9, 11)
    body = ollama.requests_to("/api/chat")[-1].body
    assert body["stream"] is True and body["keep_alive"] == "30m"
    assert body["options"] == {"num_ctx": 8192, "num_gpu": 20, "temperature": 0.2, "num_predict": 50}
    assert body["messages"][0] == {"role": "system", "content": "sys"}


def test_openai_compatible_streaming_and_key(isolated_home, servers, monkeypatch):
    monkeypatch.setenv("VLLM_KEY", "vk-1")
    with FakeOpenAI(api_key="vk-1") as server:
        write_model_config(isolated_home, chain=["vllm"], providers=[provider_toml(
            "vllm", "openai_compatible", server.url + "/v1", model="m", stream=True, api_key_env="VLLM_KEY",
            min_spacing_ms=0)])
        cfg = load_config(isolated_home)
        server.reply("one two three four five six seven", usage={"input": 30, "output": 7, "cache_read": 10})
        result = call_model("q", cfg)
        assert result.text == "one two three four five six seven"
        assert (result.input_tokens, result.cache_read_tokens, result.output_tokens) == (20, 10, 7)
        assert server.requests[-1].path == "/v1/chat/completions"


def test_tier_model_from_fresh_hw_state_else_configured_default(isolated_home, servers):
    ollama, _, _ = servers
    cfg = _cfg(isolated_home, servers, models='local_model = "qwen3:4b"')
    state = {"schema_version": 1, "written_at": time.time(), "interval_s": 5.0,
             "tier": {"name": "small", "model": "tiny:1b", "num_gpu": 12, "reason": "test", "changed_at": 0}}
    path = cfg["paths"]["hw_state"]
    with open(path, "w") as fh:
        json.dump(state, fh)
    result = call_model("q", cfg)
    assert result.model == "tiny:1b"
    assert ollama.requests_to("/api/chat")[-1].body["options"].get("num_gpu") == 12
    state["written_at"] = time.time() - 3600  # stale
    with open(path, "w") as fh:
        json.dump(state, fh)
    assert call_model("q", cfg).model == "qwen3:4b"


def test_json_schema_result_is_parsed_and_checked(isolated_home, servers):
    ollama, _, _ = servers
    cfg = _cfg(isolated_home, servers)
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    ollama.reply('```json\n{"n": 3}\n```')
    result = call_model("q", cfg, json_schema=schema)
    assert result.json == {"n": 3}
    assert ollama.requests_to("/api/chat")[-1].body["format"] == schema
    ollama.reply('{"n": "three"}')
    with pytest.raises(ModelOutputInvalid, match="not valid JSON for the schema"):
        call_model("q", cfg, json_schema=schema)


def test_no_provider_configured_is_a_clear_error(isolated_home, servers):
    cfg = _cfg(isolated_home, servers, chain=("nosuch",))
    with pytest.raises(NoProviderAvailable, match="no provider named 'nosuch'"):
        call_model("q", cfg)


def test_bad_messages_are_rejected_before_any_request(isolated_home, servers):
    ollama, _, _ = servers
    cfg = _cfg(isolated_home, servers)
    with pytest.raises(ModelRequestError):
        call_model([{"role": "robot", "content": "x"}], cfg)
    with pytest.raises(ModelRequestError):
        call_model([], cfg)
    assert ollama.request_count == 0


def test_usage_row_names_the_agent_and_task_from_the_process_context(isolated_home, servers, monkeypatch):
    from fleet import logs

    context = logs._ContextFilter("coder_1")
    context.task_id = 77
    monkeypatch.setattr(logs, "_context", context)
    cfg = _cfg(isolated_home, servers)
    result = call_model("q", cfg, skill="code_review")
    row = open_store(cfg).usage_rows(call_id=result.call_id)[0]
    assert (row["agent"], row["task_id"], row["skill"]) == ("coder_1", 77, "code_review")


def test_a_remote_ollama_is_cloud_for_offline_and_local_only():
    """Anchor lesson 14: "local only" means local. An Ollama provider pointed at
    a hosted or remote server is judged by its host, like any other server."""
    from fleet.config import defaults
    from fleet.providers.ollama import OllamaProvider

    def ollama(**table):  # a [providers.ollama] table as the loader fills it
        return OllamaProvider("ollama", defaults()["providers"]["ollama"] | table, defaults())

    assert ollama(base_url="https://ollama.example.com").is_cloud
    assert not ollama(base_url="http://localhost:11434").is_cloud
    assert not ollama(base_url="http://192.168.1.20:11434").is_cloud
    assert not ollama(base_url="https://gpu.example.com", locality="local").is_cloud


# -- replies and interruptions that must not escape the chain (found in review) --
@pytest.mark.parametrize("first, reply", [
    ("ollama", Reply(raw=b"[1, 2]")),                                      # JSON, not an object
    ("ollama", Reply(body={"error": "llama runner process has terminated"})),  # 200 carrying an error
    ("backup", Reply(body={"error": {"message": "upstream model crashed"}})),  # the OpenRouter/LiteLLM way
    ("claude", Reply(raw=b"{not json")),                                    # the SDK cannot parse it
    ("claude", Reply(raw=b'"just a string"')),
])
def test_an_unreadable_or_error_reply_fails_over_and_is_accounted(isolated_home, servers, first, reply):
    ollama, claude, openai = servers
    by_name = {"ollama": ollama, "claude": claude, "backup": openai}
    chain = [first] + [n for n in ("ollama", "claude", "backup") if n != first]
    cfg = _cfg(isolated_home, servers, chain=chain, extra='[budgets]\nglobal_calls = 2\nenforcement = "block"\n')
    by_name[first].enqueue(reply)
    for name in chain[1:]:
        by_name[name].reply(f"from {name}")
    result = call_model("q", cfg, skill="s")
    assert result.provider == chain[1] and result.text == f"from {chain[1]}"
    assert [(h["provider"], h["reason"]) for h in result.trail] == [(first, "server")]
    store = open_store(cfg)
    rows = store.usage_rows(call_id=result.call_id)
    assert [(r["provider"], r["success"], r["reason"]) for r in rows] == [(first, 0, "server"),
                                                                        (chain[1], 1, "server")]
    assert store.usage_totals(0)["reserved_calls"] == 0  # no reservation left behind
    assert call_model("q2", cfg, skill="s").provider == first  # healthy again; the budget's second call is there


def test_a_stream_cut_off_before_its_end_fails_over_instead_of_returning_part(isolated_home, servers):
    ollama, _, openai = servers
    cfg = _cfg(isolated_home, servers, chain=("backup", "ollama"))
    text = open(cfg["home"] + "/fleet.toml").read().replace('model = "served-model"',
                                                            'model = "served-model"\nstream = true')
    open(cfg["home"] + "/fleet.toml", "w").write(text)
    cfg = load_config(isolated_home)
    openai.enqueue(Reply(raw=b'data: {"choices": [{"delta": {"content": "The answer is forty"}}]}\n\n'))
    ollama.reply("complete answer")
    result = call_model("q", cfg, skill="s")
    assert result.provider == "ollama" and result.text == "complete answer"
    assert [(h["provider"], h["reason"]) for h in result.trail] == [("backup", "transport")]


def test_an_interrupted_call_is_accounted_and_gives_its_reservation_back(isolated_home, servers):
    # The worker cancels a task by raising from a signal handler, which can
    # land while the request is out.
    import signal

    class Cancelled(BaseException):
        pass

    ollama, _, _ = servers
    cfg = _cfg(isolated_home, servers, chain=("ollama",), extra='[budgets]\nglobal_calls = 1\nenforcement = "block"\n')
    ollama.enqueue(Reply(text="slow", delay_s=3.0))

    def cancel(signum, frame):
        raise Cancelled()

    previous = signal.signal(signal.SIGALRM, cancel)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(Cancelled):
            call_model("q", cfg, skill="s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    store = open_store(cfg)
    rows = store.usage_rows()
    assert [(r["provider"], r["success"], r["reason"]) for r in rows] == [("ollama", 0, "interrupted")]
    assert store.usage_totals(0)["reserved_calls"] == 0
    ollama.clear()
    ollama.reply("next task")
    assert call_model("q", cfg, skill="s").text == "next task"  # not blocked by a leaked reservation


def test_a_provider_free_again_during_a_slow_pass_is_tried_not_given_up(isolated_home, servers):
    ollama, _, openai = servers
    cfg = _cfg(isolated_home, servers, chain=("ollama", "backup"))
    text = open(cfg["home"] + "/fleet.toml").read().replace("max_wait_s = 0.0", "max_wait_s = 10.0")
    open(cfg["home"] + "/fleet.toml", "w").write(text)
    cfg = load_config(isolated_home)
    ollama.fail(429, "slow down", retry_after=1)
    openai.enqueue(Reply(status=429, message="busy", retry_after=60, delay_s=1.5))  # the pass outlasts the wait
    ollama.reply("answer")
    t0 = time.monotonic()
    result = call_model("q", cfg, skill="s")
    assert result.provider == "ollama" and result.text == "answer" and time.monotonic() - t0 < 8


def test_all_providers_busy_says_so_instead_of_asking_to_start_them(isolated_home, servers):
    ollama, claude, openai = servers
    cfg = _cfg(isolated_home, servers)
    for server in (ollama, claude, openai):
        server.fail(429, "slow down", retry_after=60)
    with pytest.raises(NoProviderAvailable) as info:
        call_model("q", cfg, skill="s")
    text = str(info.value)
    assert "busy (rate-limited" in text and "max_wait_s" in text
    assert "ollama serve" not in text and "ANTHROPIC_API_KEY" not in text
