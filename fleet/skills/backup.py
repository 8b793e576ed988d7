"""backup skill: an online-consistent snapshot of the database (SQLite backup API)
plus knowledge/ and fleet.toml into a timestamped folder under backups/, verified
with integrity_check, keeping the last N. The work is done by fleet.backup.
"""

from __future__ import annotations

DESCRIPTION = ("Back up the fleet database (online, SQLite backup API), knowledge/ and fleet.toml "
               "into backups/<UTC timestamp>/, verified with integrity_check; keeps the last N.")
REQUIRES_NETWORK = False
REQUIRES_MODEL = False
LOCAL_ONLY = True
IDEMPOTENT = True
TIMEOUT_S = 1800
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "keep": {"type": "integer", "minimum": 1, "maximum": 1000,
                 "description": "how many backups to keep (default: [backup] keep)"},
    },
    "additionalProperties": False,
}


def run(payload: dict, config: dict, log) -> dict:
    from fleet.backup import create_backup

    info = create_backup(config, keep=payload.get("keep"))
    log.info("backup %s written to %s (integrity %s, %s tasks, pruned %s)", info["id"], info["path"],
             info["integrity"], info.get("tasks"), info.get("pruned"))
    return info
