"""Test skill: blocks the signals a worker uses to stop skill code, then overruns its
timeout, so only ending the process can stop it (the supervisor records the timeout)."""

import signal
import time

DESCRIPTION = "Overrun the timeout with interruption signals blocked (test skill)."
TIMEOUT_S = 1.0


def run(payload, config, log):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    time.sleep(3600)
    return {}
