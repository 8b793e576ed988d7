"""Test skill: sleeps `seconds`, optionally in a grandchild process, recording its pid."""

import os
import subprocess
import sys
import time

DESCRIPTION = "Sleep for a while (test skill for long, hung and killed tasks)."
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "seconds": {"type": "number", "minimum": 0},
        "pid_file": {"type": "string"},
        "grandchild": {"type": "boolean"},
        "marker_dir": {"type": "string"},
    },
    "required": ["seconds"],
}


def run(payload, config, log):
    marker = payload.get("marker_dir")
    if marker:  # one file per start and per end: lets a test prove attempts never overlap
        open(os.path.join(marker, f"start-{os.getpid()}-{time.time():.6f}"), "w").close()
    if payload.get("pid_file"):
        with open(payload["pid_file"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
    if payload.get("grandchild"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        if payload.get("pid_file"):
            with open(payload["pid_file"], "a") as fh:
                fh.write(f"{child.pid}\n")
    end = time.monotonic() + float(payload["seconds"])
    while time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    if marker:
        open(os.path.join(marker, f"end-{os.getpid()}-{time.time():.6f}"), "w").close()
    log.info("slept %.2f s", payload["seconds"])
    return {"slept": payload["seconds"], "pid": os.getpid()}
