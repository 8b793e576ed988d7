"""Test skill: always raises (retry and dead-letter tests)."""

DESCRIPTION = "Always fail (test skill)."


def run(payload, config, log):
    raise RuntimeError("this skill always fails")
