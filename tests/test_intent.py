"""Intent parsing: JSON bypass, the conductor model over a loopback Ollama
(good and malformed replies), the deterministic matcher with no model, and
low confidence as an error listing candidates (never a silent default)."""

from __future__ import annotations

import json

import pytest
from fakes.model_servers import FakeOllama, dead_url, provider_toml, write_model_config

from fleet.config import load_config
from fleet.intent import IntentError, parse_intent, rank_skills
from fleet.skill_registry import SkillInfo

CATALOGUE = {
    "summarize": SkillInfo("summarize", "x", "Summarise a text file or a folder of notes into key points",
                           {"type": "object", "required": ["path"],
                            "properties": {"path": {"type": "string", "minLength": 1}}}),
    "web_search": SkillInfo("web_search", "x", "Search the web and return result links",
                            {"type": "object", "required": ["query"],
                             "properties": {"query": {"type": "string", "minLength": 1}}}),
    "security_review": SkillInfo("security_review", "x", "Static security review of Python code with bandit",
                                 {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}),
    "memory_optimizer": SkillInfo("memory_optimizer", "x", "Fleet memory care: audit, optimize or compact",
                                  {"type": "object", "required": ["action"],
                                   "properties": {"action": {"enum": ["audit", "optimize", "compact"]}}}),
}


@pytest.fixture
def conductor(isolated_home):
    with FakeOllama(models=["conductor:4b"]) as ollama:
        write_model_config(isolated_home, chain=["ollama"], models='conductor_provider = "ollama"\n'
                           'conductor_model = "conductor:4b"',
                           providers=[provider_toml("ollama", "ollama", ollama.url)])
        yield ollama, load_config(isolated_home)


def test_json_instruction_bypasses_parsing(conductor):
    ollama, cfg = conductor
    out = parse_intent('{"skill": "summarize", "payload": {"path": "a.md"}, "priority": 7}', cfg,
                       catalogue=CATALOGUE)
    assert (out["skill"], out["payload"], out["priority"], out["method"]) == ("summarize", {"path": "a.md"}, 7, "json")
    assert ollama.request_count == 0


@pytest.mark.parametrize("text,match", [
    ('{"skill": "summarize", "payload": {}}', "field 'path'"),
    ('{"skill": "nope"}', "unknown skill 'nope'; installed skills: memory_optimizer, security_review"),
    ('{"skill": "summarize", "payload": {"path": "a"}, "priority": 11}', "priority must be an integer from 1 to 10"),
    ('{"skill": ', "not valid JSON"),
    ('{"payload": {}}', 'needs a "skill"'),
])
def test_bad_json_instruction_is_a_clear_error(conductor, text, match):
    _, cfg = conductor
    with pytest.raises(IntentError, match=match):
        parse_intent(text, cfg, catalogue=CATALOGUE)


def test_conductor_model_parses_with_the_catalogue(conductor):
    ollama, cfg = conductor
    ollama.reply(json.dumps({"skill": "security_review", "payload": {"path": "fleet/"}, "priority": 8}))
    out = parse_intent("please check fleet/ for security holes, it is urgent", cfg, catalogue=CATALOGUE)
    assert (out["skill"], out["payload"], out["priority"], out["method"]) == (
        "security_review", {"path": "fleet/"}, 8, "model")
    body = ollama.requests_to("/api/chat")[0].body
    assert body["model"] == "conductor:4b"
    system = body["messages"][0]["content"]
    assert all(name in system for name in CATALOGUE) and "Static security review" in system
    assert '"required":["path"]' in system  # payload schemas are in the catalogue (compact JSON)
    assert body["format"]["required"] == ["skill", "payload"]
    assert body["messages"][-1] == {"role": "user", "content": "please check fleet/ for security holes, it is urgent"}


def test_conductor_sees_installed_skills_from_discovery(conductor, isolated_home):
    ollama, _ = conductor
    extra = isolated_home / "extra_skills"
    extra.mkdir()
    (extra / "translate_text.py").write_text(
        'DESCRIPTION = "Translate a text into another language"\n'
        'PAYLOAD_SCHEMA = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}\n'
        "def run(payload, config, log):\n    return {}\n")
    with open(isolated_home / "fleet.toml", "a") as fh:
        fh.write(f'\n[skills]\nextra_paths = ["{extra}"]\n')
    cfg = load_config(isolated_home)
    ollama.reply('{"skill": "translate_text", "payload": {"text": "hola"}}')
    out = parse_intent("translate hola", cfg)
    assert out["skill"] == "translate_text" and out["priority"] == 5
    assert "Translate a text into another language" in ollama.requests_to("/api/chat")[0].body["messages"][0]["content"]


@pytest.mark.parametrize("reply", [
    "Sure! You want the summarize skill.",                        # not JSON
    '{"skill": "teleport", "payload": {}}',                        # unknown skill
    '{"skill": "summarize", "payload": {"wrong": 1}}',             # payload fails the schema
    '{"payload": {"path": "notes/today.md"}}',                     # schema: skill missing
])
def test_malformed_conductor_output_falls_back_to_the_matcher(conductor, reply):
    ollama, cfg = conductor
    ollama.reply(reply)
    out = parse_intent("summarize notes/today.md", cfg, catalogue=CATALOGUE)
    assert (out["skill"], out["payload"], out["method"]) == ("summarize", {"path": "notes/today.md"}, "matcher")
    assert "conductor model reply unusable" in out["note"]
    assert ollama.request_count == 1


def test_no_model_reachable_uses_the_matcher_with_confidence(isolated_home):
    write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", dead_url())])
    cfg = load_config(isolated_home)
    out = parse_intent("search the web for sqlite wal tuning", cfg, catalogue=CATALOGUE)
    assert (out["skill"], out["payload"], out["method"]) == ("web_search", {"query": "sqlite wal tuning"}, "matcher")
    assert 0.35 <= out["confidence"] <= 1.0
    assert "conductor model unavailable" in out["note"] and "NoProviderAvailable" in out["note"]
    out = parse_intent("memory optimizer: compact now, asap", cfg, catalogue=CATALOGUE)
    assert (out["skill"], out["payload"], out["priority"]) == ("memory_optimizer", {"action": "compact"}, 8)


def test_low_confidence_is_an_error_listing_candidates_never_a_default(isolated_home):
    write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", dead_url())])
    cfg = load_config(isolated_home)
    with pytest.raises(IntentError) as info:
        parse_intent("make me a sandwich", cfg, catalogue=CATALOGUE)
    assert "could not tell which skill is meant" in str(info.value)
    assert "Candidates:" in str(info.value) and len(info.value.candidates) == 3
    with pytest.raises(IntentError) as info:  # two skills tie: the margin keeps confidence low
        parse_intent("review and summarize", cfg, catalogue=CATALOGUE)
    assert {c[0] for c in info.value.candidates[:2]} == {"summarize", "security_review"}


def test_matcher_missing_required_field_says_which_json_to_send(isolated_home):
    write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", dead_url())])
    cfg = load_config(isolated_home)
    with pytest.raises(IntentError, match='"payload": {"path": "..."}'):
        parse_intent("security review please", cfg, catalogue=CATALOGUE)


def test_ranking_is_deterministic():
    a = rank_skills("summarise my notes folder", CATALOGUE)
    assert a == rank_skills("summarise my notes folder", CATALOGUE)
    assert a[0][0] == "summarize"
