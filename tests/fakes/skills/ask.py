"""Test skill: asks a person first, then returns the answer."""

from fleet.skills._hitl import NeedsHuman

DESCRIPTION = "Ask a person (test skill for WAITING_HUMAN)."
# A strict schema: the answer the store adds on resume must not break it.
PAYLOAD_SCHEMA = {"type": "object", "properties": {"topic": {"type": "string"}}, "additionalProperties": False}


def run(payload, config, log):
    if "human_answer" not in payload:
        raise NeedsHuman("proceed?", ["yes", "no"])
    return {"answer": payload["human_answer"]}
