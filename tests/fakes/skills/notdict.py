"""Test skill: returns what the store cannot keep (bad result handling): a
non-dict by default, or with {"kind": "unserialisable"} a dict holding an
object JSON cannot encode."""


def run(payload, config, log):
    if payload.get("kind") == "unserialisable":
        return {"when": object()}
    return "a string"
