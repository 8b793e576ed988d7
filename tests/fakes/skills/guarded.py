"""Test skill: declares REQUIRES_APPROVAL, so a person approves each task first."""

DESCRIPTION = "Change something only after a person approves (test skill)."
REQUIRES_APPROVAL = True
PAYLOAD_SCHEMA = {"type": "object", "properties": {"what": {"type": "string"}}, "additionalProperties": False}


def run(payload, config, log):
    return {"done": payload.get("what"), "saw_answer": payload.get("human_answer")}
