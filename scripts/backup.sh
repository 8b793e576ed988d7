#!/usr/bin/env bash
# Back up the fleet (database via SQLite's online backup API, knowledge/, fleet.toml)
# into <fleet home>/backups/<UTC timestamp>/, verified, keeping the last N
# ([backup] keep). Safe while the fleet runs. For cron, e.g. daily at 02:00:
#   0 2 * * * FLEET_HOME=/path/to/home /path/to/repo/scripts/backup.sh >> /path/to/home/logs/backup.log 2>&1
# Extra arguments go to `lead_client.py backup` (e.g. --keep 20, --json).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$repo/.venv/bin/python"
if [ ! -x "$py" ]; then
    py="$(command -v python3 || true)"
fi
if [ -z "$py" ]; then
    echo "backup.sh: no Python found; run ./scripts/run once to create .venv" >&2
    exit 1
fi
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) backup.sh: starting" >&2
exec "$py" "$repo/fleet/lead_client.py" backup "$@"
