"""The lead_client commands, one module per area: fleet control, tasks,
messaging, cost, logs/alerts, secrets, operations, schedules, launcher modules,
the operator tools (debug reports, resolutions, audit, GDPR erase) and
code-factory workflows.
`fleet/lead_client.py` is the thin argparse front; JSON shapes are documented
in docs/cli.md.
"""

AREAS = ("fleet_control", "tasks", "messaging", "cost", "logs_alerts", "secrets_cmd", "ops", "smoke", "schedule_cmd",
         "operator_tools", "modules_cmd", "workflow_cmd")

# Which area registers each command: lets the front build only the parser the
# command line needs (start-up time of `status` matters).
COMMANDS = {
    **dict.fromkeys(("status", "start", "stop", "restart", "pause", "resume", "drain", "detect-cli", "hw"),
                    "fleet_control"),
    **dict.fromkeys(("task", "dispatch", "result", "tasks", "cancel", "retry", "hitl"), "tasks"),
    **dict.fromkeys(("send", "broadcast", "inbox", "notes"), "messaging"),
    **dict.fromkeys(("usage", "usage-delta", "budget"), "cost"),
    **dict.fromkeys(("logs", "alerts"), "logs_alerts"),
    "secret": "secrets_cmd",
    "smoke": "smoke",
    "schedule": "schedule_cmd",
    "module": "modules_cmd",
    "workflow": "workflow_cmd",
    **dict.fromkeys(("report-issue", "resolutions", "audit", "gdpr-erase"), "operator_tools"),
    **dict.fromkeys(("install-service", "uninstall-service", "backup", "restore", "preflight", "report", "store"),
                    "ops"),
}
