"""Every library skill declares its interface honestly (read by the registry without
importing), has a valid JSON Schema, and its schema rejects a bad payload with a
message naming the field."""

from __future__ import annotations

import ast
from pathlib import Path

import jsonschema
import pytest

from fleet.skill_registry import InvalidPayload, discover, validate_payload

LIBRARY = ["code_review", "code_discuss", "fma_review", "code_quality", "security_review", "skill_draft", "summarize",
           "synthesize", "web_search", "arxiv_fetch", "rag_index", "rag_query", "flashcard", "plan_workload",
           "memory_optimizer"]
FLAGS = ("REQUIRES_MODEL", "REQUIRES_NETWORK", "LOCAL_ONLY", "IDEMPOTENT", "TIMEOUT_S")

# skill -> (bad payload, the field the error must name)
BAD = {
    "code_review": ({"path": "a.py", "checklist": ["style"]}, "checklist.0"),
    "code_discuss": ({"thread": "../etc"}, "thread"),
    "fma_review": ({"path": "a.py", "discuss": "yes"}, "discuss"),
    "code_quality": ({"path": "fleet", "max_complexity": 0}, "max_complexity"),
    "security_review": ({"path": "fleet", "min_severity": "extreme"}, "min_severity"),
    "skill_draft": ({"name": "Bad-Name", "description": "does things well"}, "name"),
    "summarize": ({"path": "a.md", "max_words": 5}, "max_words"),
    "synthesize": ({"paths": "a.md", "title": "t"}, "paths"),
    "web_search": ({"query": "q", "provider": "altavista"}, "provider"),
    "arxiv_fetch": ({"query": "q", "max_results": 1000}, "max_results"),
    "rag_index": ({"paths": ["x"], "chunk_chars": 10}, "chunk_chars"),
    "rag_query": ({"query": "q", "limit": 0}, "limit"),
    "flashcard": ({"path": "a.md", "count": "ten"}, "count"),
    "plan_workload": ({"goal": "do it all", "auto_approve": "sure"}, "auto_approve"),
    "memory_optimizer": ({"action": "defrag"}, "action"),
}
MISSING = {  # a required field left out
    "code_quality": "path", "security_review": "path", "skill_draft": "name", "web_search": "query",
    "rag_query": "query", "flashcard": "path", "plan_workload": "goal", "memory_optimizer": "action",
    "synthesize": "paths", "code_discuss": "thread",
}


@pytest.fixture(scope="module")
def catalogue():
    return discover(None)


def test_every_library_skill_is_discovered_with_honest_metadata(catalogue):
    for name in LIBRARY:
        info = catalogue[name]
        assert info.description and len(info.description) > 20, name
        jsonschema.Draft202012Validator.check_schema(info.payload_schema)
        assert info.payload_schema.get("additionalProperties") is False, name
        tree = ast.parse(Path(info.path).read_text())
        assert ast.get_docstring(tree), name
        declared = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assert set(FLAGS) <= declared, (name, set(FLAGS) - declared)
        assert info.timeout_s and info.timeout_s > 0
    model = {n for n in LIBRARY if catalogue[n].requires_model}
    assert model == {"code_review", "code_discuss", "fma_review", "skill_draft", "synthesize", "flashcard",
                     "plan_workload"}
    assert {n for n in LIBRARY if catalogue[n].requires_network} == {"web_search", "arxiv_fetch"}
    # plan_workload asks for approval of the plan itself, so the worker must not ask first
    assert not any(catalogue[n].requires_approval for n in LIBRARY)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_payload_rejected_naming_the_field(catalogue, name):
    payload, field = BAD[name]
    with pytest.raises(InvalidPayload) as err:
        validate_payload(catalogue[name], payload)
    assert f"field '{field}'" in str(err.value), str(err.value)


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_required_field_is_named(catalogue, name):
    good = {k: v for k, v in BAD[name][0].items() if k != BAD[name][1]}
    good.pop(MISSING[name], None)
    with pytest.raises(InvalidPayload) as err:
        validate_payload(catalogue[name], good)
    assert f"field '{MISSING[name]}'" in str(err.value), str(err.value)


def test_unknown_field_is_named_and_human_answer_accepted(catalogue):
    with pytest.raises(InvalidPayload, match="field 'pathh'"):
        validate_payload(catalogue["code_quality"], {"path": "fleet", "pathh": "x"})
    # the store adds these when a person answers; the skills that ask must accept them
    for name in ("code_review", "plan_workload"):
        base = {"code_review": {"path": "a.py"}, "plan_workload": {"goal": "plan things"}}[name]
        validate_payload(catalogue[name], dict(base, human_answer="approve", human_question="ok?"))


def test_a_computed_schema_is_read_from_the_module_and_enforced(tmp_path):
    """A PAYLOAD_SCHEMA built from a shared piece (not a literal) must still be
    found and enforced; a registry that skipped it would validate nothing."""
    from fleet.skill_registry import InvalidPayload, discover, validate_payload

    (tmp_path / "built.py").write_text(
        'BASE = {"n": {"type": "integer"}}\n'
        'PAYLOAD_SCHEMA = {"type": "object", "properties": {**BASE}, "required": ["n"]}\n'
        'TIMEOUT_S = 5 * 6\n'
        'def run(payload, config, log):\n    return {}\n')
    info = discover({"skills": {"extra_paths": [str(tmp_path)]}})["built"]
    assert info.timeout_s == 30 and info.payload_schema["required"] == ["n"]
    with pytest.raises(InvalidPayload, match="field 'n'"):
        validate_payload(info, {})
