"""Skills: one module per skill, each with `run(payload, config, log) -> dict`."""
