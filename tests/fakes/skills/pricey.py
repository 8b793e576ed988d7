"""Test skill: one model call through the routing layer (budget tests)."""

DESCRIPTION = "Ask the model one question (test skill)."
PAYLOAD_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}
REQUIRES_MODEL = True
TIMEOUT_S = 30


def run(payload, config, log):
    from fleet.skills._models import call_model

    result = call_model(payload.get("q", "hello"), config, skill="pricey")
    return {"text": result.text}
