"""Test skill: declares that it uses the GPU (training-lock exclusion)."""

DESCRIPTION = "Pretend to use the GPU (test skill)."
USES_GPU = True


def run(payload, config, log):
    return {"ran": True}
