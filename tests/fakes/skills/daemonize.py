"""Test skill: double-forks a `setsid` daemon that outlives the skill (as a
badly behaved tool would), writes the daemon's pid to `pid_file`, then sleeps."""

import os
import subprocess
import sys
import time

DESCRIPTION = "Leave a detached daemon behind (test skill for process containment)."
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {"pid_file": {"type": "string"}, "seconds": {"type": "number", "minimum": 0}},
    "required": ["pid_file"],
}

_DAEMON = """
import os, sys, time
if os.fork():
    os._exit(0)              # the intermediate exits: the daemon is an orphan
os.setsid()                  # ... in a session of its own
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def run(payload, config, log):
    subprocess.run([sys.executable, "-c", _DAEMON, payload["pid_file"]], check=True,
                   start_new_session=True)
    deadline = time.monotonic() + 10
    while not os.path.exists(payload["pid_file"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(float(payload.get("seconds", 0)))
    return {"daemon": int(open(payload["pid_file"]).read())}
