"""Test skill: one long C call that keeps the GIL (libc sleep through ctypes.PyDLL),
so the worker's watchdog thread can neither renew the lease nor time it out."""

import ctypes

DESCRIPTION = "Hold the GIL in one C call (test skill for wedged workers)."
TIMEOUT_S = 120


def run(payload, config, log):
    ctypes.PyDLL(None).sleep(int(payload.get("seconds", 30)))
    return {"slept": True}
