"""Test skill: takes down the worker process that runs it (as a segfaulting
native library or a memory bomb would): a poison pill."""

import os
import signal

DESCRIPTION = "Kill the worker running it (test skill for poison-pill detection)."
PAYLOAD_SCHEMA = {"type": "object"}


def run(payload, config, log):
    os.kill(os.getpid(), signal.SIGKILL)
    return {}
