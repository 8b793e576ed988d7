"""Test skill: hangs past its short timeout (ignores cancellation by catching everything)."""

import time

DESCRIPTION = "Hang until killed (test skill for hard timeouts)."
TIMEOUT_S = 1.5


def run(payload, config, log):
    while True:
        try:
            time.sleep(0.2)
        except BaseException:  # noqa: BLE001 - deliberately uninterruptible
            log.info("ignoring an interruption")
