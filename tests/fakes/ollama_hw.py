"""A loopback Ollama-compatible server as its own PROCESS, for the hardware
supervisor's model-server care tests: the fleet can start it, make it
unhealthy (port bound, API failing) and restart it.

    python tests/fakes/ollama_hw.py --port 18080 --state-dir DIR [--ignore-term]

DIR/unhealthy present -> every request gets a 500 (the port stays bound);
a fresh start removes it (a restart cures the wedge). Each start appends its
PID to DIR/starts. Built on tests/fakes/model_servers.FakeOllama.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.fakes.model_servers import FakeOllama


class WedgeableOllama(FakeOllama):
    def __init__(self, state_dir: str, **kw):
        super().__init__(**kw)
        self.state_dir = state_dir

    def _dispatch(self, h, rec):
        if os.path.exists(os.path.join(self.state_dir, "unhealthy")):
            return h.send_json(500, {"error": "llama runner process has terminated"})
        return super()._dispatch(h, rec)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM (tests the KILL path)")
    args = ap.parse_args()
    try:
        os.unlink(os.path.join(args.state_dir, "unhealthy"))
    except FileNotFoundError:
        pass
    # TERM ends the process at once (like a server that exits on TERM), unless ignored.
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.ignore_term else (lambda *a: os._exit(0)))
    WedgeableOllama(args.state_dir, port=args.port).start()
    with open(os.path.join(args.state_dir, "starts"), "a") as fh:
        fh.write(f"{os.getpid()}\n")
    while True:  # short sleeps: a TERM delivered to a server thread is handled here within 0.2 s
        time.sleep(0.2)


if __name__ == "__main__":
    raise SystemExit(main())
