"""Test skill: declares that it needs the network (offline-mode refusal)."""

DESCRIPTION = "Pretend to need the network (test skill)."
REQUIRES_NETWORK = True


def run(payload, config, log):
    return {"ran": True}
