"""Test skill: returns a non-dict (bad result handling)."""


def run(payload, config, log):
    return "a string"
