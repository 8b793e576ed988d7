"""A supervised service that is SIGKILLed before it ever comes up (no agent
row, no heartbeat): a start crash, for the respawn policy's flapping guard."""

import os
import signal

if __name__ == "__main__":
    os.kill(os.getpid(), signal.SIGKILL)
