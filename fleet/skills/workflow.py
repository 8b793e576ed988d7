"""workflow skill: one step of a code-factory workflow (fleet/workflow). The
task names the workflow and the step; the skill runs that step's phase (plan,
human gate, execute, review, gates, done, learn) and advances the workflow,
which enqueues the next step's task. Started by `lead_client workflow start`.
"""

from __future__ import annotations

from fleet.workflow.engine import run_step

DESCRIPTION = ("Run one phase of a code-factory workflow (plan, approval, execute, cross-model review, gates, "
               "commit, learn); started by lead_client workflow start, not by hand.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
# A re-run after a crash repeats the unfinished phase from a clean worktree;
# a finished phase is never run again (the store's step compare-and-set).
IDEMPOTENT = True
REQUIRES_APPROVAL = False  # the plan's approval is the workflow's own human gate
TIMEOUT_S = 1800
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "workflow_id": {"type": "integer", "minimum": 1},
        "step": {"type": "integer", "minimum": 0},
    },
    "required": ["workflow_id", "step"],
    "additionalProperties": False,
}


def run(payload: dict, config: dict, log) -> dict:
    return run_step(payload, config, log)
