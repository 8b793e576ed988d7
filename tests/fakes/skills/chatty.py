"""Test skill: logs in a tight loop past its short timeout, so the timeout is
likely to stop it while it holds the log handler's lock."""

DESCRIPTION = "Log without pause until killed (test skill for hard timeouts)."
TIMEOUT_S = 1.5


def run(payload, config, log):
    n = 0
    while True:
        n += 1
        log.info("still talking %d", n)
