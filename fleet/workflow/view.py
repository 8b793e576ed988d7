"""What a person sees of a workflow (CLI status --json, the dashboard's
Workflows page): its row, the current task's state, and the history of its
finished phases with tokens and cost."""

from __future__ import annotations


def workflow_view(store, wf: dict) -> dict:
    """The workflow as a JSON object (see docs/cli.md, workflow status)."""
    steps = store.workflow_steps(wf["id"])
    task = store.get(wf["task_id"]) if wf.get("task_id") else None
    st = wf["state"]
    waiting = task is not None and task.status == "WAITING_HUMAN"
    stalled = None
    if wf["status"] == "RUNNING" and task is not None and task.status in ("FAILED", "CANCELLED"):
        stalled = f"its {wf['phase']} task {task.id} is {task.status}: {task.error}"
    return {
        "id": wf["id"], "goal": wf["goal"], "repo": wf["repo"], "base": wf["base"], "status": wf["status"],
        "phase": wf["phase"], "step": wf["step"], "waiting_for_approval": waiting,
        "task_id": wf.get("task_id"), "task_status": task.status if task else None,
        "spent_usd": wf["spent_usd"], "budget_usd": wf["budget_usd"], "input_tokens": wf["input_tokens"],
        "output_tokens": wf["output_tokens"], "error": wf["error"], "cancel_requested": bool(wf["cancel_requested"]),
        "branch": st.get("branch"), "commit": st.get("commit"), "report": st.get("report"),
        "approver": st.get("approver"), "plan": st.get("plan"), "attempts": st.get("attempts", 0),
        "handoffs": st.get("handoffs", 0), "stalled": stalled, "created_at": wf["created_at"],
        "finished_at": wf["finished_at"],
        "history": [{k: s[k] for k in ("step", "phase", "outcome", "model_calls", "input_tokens", "output_tokens",
                                       "cost_usd", "finished_at")} for s in steps],
    }
