"""The offline intent matcher on the installed skills (issue 16 item 10):
British and American spellings and word forms match, a file type is a weaker
signal than the verb, and a table of plain instructions (tests/intent_cases.py)
is matched right or refused, never guessed wrong; the conductor's prompt fits
a configured token budget (item 9)."""

from __future__ import annotations

import pytest
from fakes.model_servers import FakeOllama, dead_url, provider_toml, write_model_config
from intent_cases import INTENT_CASES

from fleet.config import load_config
from fleet.intent import (
    CHARS_PER_TOKEN,
    SYSTEM_PROMPT,
    conductor_system_prompt,
    normalize_word,
    parse_intent,
    rank_skills,
)
from fleet.skill_registry import discover


@pytest.fixture(scope="module")
def catalogue():
    return discover(None)


@pytest.fixture
def offline_cfg(isolated_home):
    write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", dead_url())])
    return load_config(isolated_home)


@pytest.mark.parametrize("forms", [
    ("summarize", "summarise", "summary", "summaries", "summarising", "summarization", "summarized"),
    ("analyse", "analyze", "analysis", "analysing", "analyzed"),
    ("synthesise", "synthesize", "synthesis"),
    ("review", "reviews", "reviewing", "reviewed"),
    ("index", "indexes", "indexing"),
    ("colour", "color"),
    ("note", "notes"),
])
def test_spellings_and_word_forms_meet(forms):
    assert len({normalize_word(f) for f in forms}) == 1, {f: normalize_word(f) for f in forms}


def test_class_and_classes_meet_and_notes_is_not_not():
    assert normalize_word("classes") == normalize_word("class") and normalize_word("notes") == "note"


@pytest.mark.parametrize("text,skill,payload", [
    ("summarise notes.md", "summarize", {"path": "notes.md"}),
    ("summarize notes.md", "summarize", {"path": "notes.md"}),
    ("review fleet/db.py", "code_review", {"path": "fleet/db.py"}),
])
def test_the_readme_examples_are_understood_offline(offline_cfg, catalogue, text, skill, payload):
    out = parse_intent(text, offline_cfg, catalogue=catalogue, use_model=False)
    assert (out["skill"], out["payload"], out["method"]) == (skill, payload, "matcher")
    assert out["confidence"] >= offline_cfg["models"]["intent_min_confidence"]


def test_a_file_type_alone_does_not_outvote_the_verb(catalogue):
    # .md files are documents and .py files code: a hint, weaker than what the operator asked for
    assert rank_skills("security review of notes.md", catalogue)[0][0] == "security_review"
    assert rank_skills("summarise fleet/worker.py", catalogue)[0][0] == "summarize"


def _accuracy(catalogue, threshold: float) -> tuple[int, list[str], list[str]]:
    right, wrong, refused = 0, [], []
    for text, want in INTENT_CASES:
        top, confidence = rank_skills(text, catalogue)[0]
        if confidence < threshold:
            refused.append(f"{text!r} (best {top} at {confidence:.2f})")
        elif top != want:
            wrong.append(f"{text!r} -> {top}, meant {want}")
        else:
            right += 1
    return right, wrong, refused


def test_table_of_plain_instructions(catalogue, offline_cfg, capsys):
    assert len(INTENT_CASES) >= 40
    assert {skill for _, skill in INTENT_CASES} == set(catalogue)  # every installed skill is asked for
    right, wrong, refused = _accuracy(catalogue, offline_cfg["models"]["intent_min_confidence"])
    with capsys.disabled():
        print(f"\noffline intent matcher: {right}/{len(INTENT_CASES)} right ({right / len(INTENT_CASES):.0%}), "
              f"{len(wrong)} wrong, {len(refused)} refused")
    assert wrong == []  # a refusal lists candidates; a wrong guess would run the wrong skill
    assert right / len(INTENT_CASES) >= 0.9, refused


# -- 9. the conductor prompt fits a small server ------------------------------------
def test_conductor_prompt_stays_under_its_budget_with_the_likely_skills(catalogue):
    full = len(SYSTEM_PROMPT) + sum(len(str(i.payload_schema)) + len(i.description) for i in catalogue.values())
    assert full > 1500 * CHARS_PER_TOKEN  # the whole catalogue would not fit the default budget
    for text, want in INTENT_CASES:
        prompt, listed = conductor_system_prompt(text, catalogue, 1500)
        assert len(prompt) <= 1500 * CHARS_PER_TOKEN
        if rank_skills(text, catalogue)[0][1] > 0:
            assert want in listed, (text, listed)
    prompt, listed = conductor_system_prompt("summarise notes.md", catalogue, 400)
    assert listed and listed[0] == "summarize"  # at least the likeliest, whatever the budget


def test_conductor_call_sends_the_budgeted_prompt(isolated_home, catalogue):
    with FakeOllama(models=["conductor:4b"]) as ollama:
        write_model_config(isolated_home, chain=["ollama"], providers=[provider_toml("ollama", "ollama", ollama.url)],
                           models='conductor_provider = "ollama"\nconductor_model = "conductor:4b"\n'
                                  'conductor_prompt_tokens = 1000')
        cfg = load_config(isolated_home)
        ollama.reply('{"skill": "summarize", "payload": {"path": "notes.md"}, "priority": 5}')
        out = parse_intent("summarise notes.md", cfg, catalogue=catalogue)
        system = ollama.requests_to("/api/chat")[0].body["messages"][0]["content"]
    assert out["skill"] == "summarize" and out["method"] == "model"
    assert len(system) <= 1000 * CHARS_PER_TOKEN and "- summarize:" in system
    assert "Only the likeliest of the installed skills are listed" in system
