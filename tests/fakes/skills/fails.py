"""Test skill: always raises (retry and dead-letter tests); with
{"surrogate": true} its message quotes a file name that is not valid Unicode,
as os.listdir gives for undecodable bytes."""

DESCRIPTION = "Always fail (test skill)."


def run(payload, config, log):
    if payload.get("surrogate"):
        raise RuntimeError("cannot index caf\udce9.txt")
    raise RuntimeError("this skill always fails")
