"""Test skill: one chat call through the routing layer (`call_model`) on the
model its payload names, as a model-bound skill of a mixed-model backlog."""

from fleet.skills._models import call_model

DESCRIPTION = "Ask the model the payload names (test skill for model-aware claiming)."
REQUIRES_MODEL = True
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
    "required": ["model"],
}


def run(payload, config, log):
    reply = call_model(payload.get("prompt") or "hello", config, model=payload["model"], skill="modelchat")
    return {"model": reply.model, "text": reply.text}
