"""Test service that crashes at start (respawn backoff and flapping tests)."""

import sys

if __name__ == "__main__":
    print("crash_service: failing at start on purpose", file=sys.stderr)
    raise SystemExit(3)
