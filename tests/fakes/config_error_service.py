"""Test service that exits 78 (a configuration error) at start: the
supervisor parks its role until it is started again (respawn tests)."""

import sys

if __name__ == "__main__":
    print("config_error_service: refusing to start on purpose (exit 78)", file=sys.stderr)
    raise SystemExit(78)
