"""Test skill: does nothing (or sleeps `sleep_s`) and returns its payload's `n`
(fleet throughput and chaos tests)."""

import time

DESCRIPTION = "Return at once (test skill)."
PAYLOAD_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "sleep_s": {"type": "number", "minimum": 0}}}
TIMEOUT_S = 30


def run(payload, config, log):
    if payload.get("sleep_s"):
        time.sleep(payload["sleep_s"])
    return {"n": payload.get("n"), "ok": True}
