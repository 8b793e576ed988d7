"""Test skill: does nothing and returns its payload's `n` (fleet throughput and chaos tests)."""

DESCRIPTION = "Return at once (test skill)."
PAYLOAD_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}
TIMEOUT_S = 30


def run(payload, config, log):
    return {"n": payload.get("n"), "ok": True}
