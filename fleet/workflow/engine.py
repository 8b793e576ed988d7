"""Starting a workflow and running one of its steps. `start` checks the
repository and the models, then creates the workflow with its first task;
`run_step` (the `workflow` skill's body) runs the current phase and advances
the workflow once, enqueueing the next phase's task in the same transaction.
A step whose phase already finished (a re-run after a crash) does nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fleet.store import InvalidTransition

from . import gitwt, phases, roles
from .phases import Outcome

SKILL = "workflow"
TASK_ATTEMPTS = 5  # a step task retried after a crash resumes the same phase


class WorkflowError(ValueError):
    """A workflow cannot start; the message says why and what to do."""


class BudgetSpent(RuntimeError):
    """The workflow's budget is spent; carries the figures."""


def settings_for(cfg: dict, *, test_command: str | None = None) -> dict:
    w = cfg["workflow"]
    return {"handoffs": int(w["handoffs"]), "max_attempts": int(w["max_attempts"]),
            "test_command": w["test_command"] if test_command is None else test_command,
            "gate_timeout_s": float(w["gate_timeout_s"]), "max_file_bytes": int(w["max_file_bytes"])}


def start(cfg: dict, store, goal: str, repo: str, *, base: str = "HEAD", budget_usd: float | None = None,
          test_command: str | None = None, models: dict | None = None, created_by: str = "operator") -> dict:
    """Create a workflow (WorkflowError when the repo, base or models are wrong)."""
    repo = os.path.realpath(repo)
    if not Path(repo).is_dir():
        raise WorkflowError(f"{repo} is not a folder; pass --repo with a git repository")
    try:
        base_commit = gitwt.resolve_commit(repo, base)
    except gitwt.GitError as exc:
        raise WorkflowError(f"{repo} has no commit {base!r} (is it a git repository with that branch?): {exc}") \
            from None
    if not base_commit:
        raise WorkflowError(f"{repo} has no commit {base!r}")
    try:
        resolved = roles.resolve_roles(cfg, models)
    except roles.RoleError as exc:
        raise WorkflowError(str(exc)) from None
    if budget_usd is None and float(cfg["workflow"]["budget_usd"]) > 0:
        budget_usd = float(cfg["workflow"]["budget_usd"])
    state = {"base_commit": base_commit, "roles": {"planner": resolved["planner"], "learner": resolved["learner"],
                                                   "a": resolved["executor"], "b": resolved["reviewer"]},
             "executor": "a", "reviewer": "b", "attempts": 0, "handoffs": 0}
    return store.create_workflow(repo, goal, base=base, settings=settings_for(cfg, test_command=test_command),
                                 state=state, budget_usd=budget_usd, created_by=created_by,
                                 first_task={"skill": SKILL, "payload": {}, "max_attempts": TASK_ATTEMPTS})


class StepContext:
    """What a phase works with: the workflow row and its state (a copy the
    engine stores when the phase ends), the task's payload, and `ask`, which
    calls a model for a role and adds its tokens and cost to this step."""

    def __init__(self, cfg: dict, store, wf: dict, payload: dict, task_id: int | None, log):
        self.cfg, self.store, self.wf, self.payload, self.task_id, self.log = cfg, store, wf, payload, task_id, log
        self.state = dict(wf["state"])
        self.usage = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "model_calls": 0}

    def worktree(self) -> str:
        return str(Path(self.cfg["home"]) / self.cfg["workflow"]["worktrees"] / f"wf-{self.wf['id']}")

    def spent(self) -> float:
        return float(self.wf["spent_usd"]) + self.usage["cost_usd"]

    def budget_spent(self) -> bool:
        budget = self.wf.get("budget_usd")
        return bool(budget) and self.spent() >= float(budget)

    def _count(self, result) -> None:
        self.usage["model_calls"] += 1
        self.usage["input_tokens"] += int(result.input_tokens or 0)
        self.usage["output_tokens"] += int(result.output_tokens or 0)
        self.usage["cost_usd"] += float(result.cost_usd or 0.0)

    def ask(self, role: str, prompt: str, *, system: str, json_schema: dict | None = None):
        """One model call as `role` (planner, learner, or executor slot a/b)."""
        from fleet.skills._models import ModelOutputInvalid, call_model

        if self.budget_spent():
            raise BudgetSpent(self.budget_text())
        who = self.state["roles"][role]
        try:
            result = call_model(prompt, self.cfg, provider=who["provider"], model=who["model"] or None,
                                system=system, json_schema=json_schema, skill=SKILL, task_id=self.task_id)
        except ModelOutputInvalid as exc:
            self._count(exc.result)
            raise
        self._count(result)
        return result

    def budget_text(self) -> str:
        return (f"the workflow's budget of {float(self.wf['budget_usd']):.4f} USD is spent: "
                f"{self.spent():.4f} USD used ({self.wf['spent_usd']:.4f} USD by the finished phases, "
                f"{self.usage['cost_usd']:.4f} USD in {self.wf['phase']})")

    def answered_by(self) -> str:
        """Who answered this step's question (the store's answer event)."""
        if self.task_id is None:
            return "unknown"
        events = self.store.events(task_id=self.task_id, action="answer", limit=1000)
        return events[-1]["actor"] if events else "unknown"

    def attempt_failed(self, phase: str, outcome: str, feedback: str, **detail) -> Outcome:
        """A diff that did not apply or failed a gate: one attempt used; back to
        execute with the feedback, or the workflow fails when none are left."""
        self.state["attempts"] = self.state.get("attempts", 0) + 1
        limit = int(self.wf["settings"]["max_attempts"])
        if self.state["attempts"] >= limit:
            return phases.fail(phase, outcome, f"{self.state['attempts']} of {limit} attempts used; last "
                                               f"failure:\n{feedback}", **detail)
        self.state["feedback"] = feedback
        return Outcome(outcome, "execute", detail={"feedback": feedback[:4000], **detail})


def run_step(payload: dict, cfg: dict, log) -> dict:
    """Run the workflow's current phase once and advance it."""
    from fleet.db import shared_store
    from fleet.logs import current_context

    store = shared_store(cfg)
    wid, step = int(payload["workflow_id"]), int(payload["step"])
    wf = store.get_workflow(wid)
    if wf["status"] != "RUNNING" or wf["step"] != step:
        return {"workflow": wid, "step": step, "skipped": f"step {step} already finished "
                                                          f"(the workflow is {wf['status']} at step {wf['step']})"}
    task_id = current_context()[0]
    ctx = StepContext(cfg, store, wf, payload, task_id, log)
    started = time.time()
    phase = wf["phase"]
    if wf["cancel_requested"]:
        outcome = cancel(ctx)
    elif ctx.budget_spent():
        outcome = phases.fail(phase, "budget", ctx.budget_text())
    else:
        try:
            outcome = phases.PHASES[phase](ctx)
        except BudgetSpent as exc:
            outcome = phases.fail(phase, "budget", str(exc))
        except gitwt.GitError as exc:
            outcome = phases.fail(phase, "git", f"git failed in {phase}: {exc}")
        except Exception as exc:
            outcome = _model_failure(cfg, store, task_id, phase, exc)
    if outcome.status == "FAILED" and phase not in ("done", "learn"):
        _drop_worktree(ctx)
    try:
        after = store.advance_workflow(
            wid, step, finished=phase, outcome=outcome.outcome, phase=outcome.phase, state=ctx.state,
            status=outcome.status, error=outcome.error, usage=ctx.usage, task_id=task_id, started_at=started,
            detail=outcome.detail, next_task={"skill": SKILL, "payload": {}, "max_attempts": TASK_ATTEMPTS})
    except InvalidTransition as exc:  # finished meanwhile by another run of this step
        return {"workflow": wid, "step": step, "skipped": str(exc)}
    log.info("workflow %d step %d: %s -> %s (%s)", wid, step, phase, outcome.outcome, after["status"])
    return {"workflow": wid, "step": step, "phase": phase, "outcome": outcome.outcome, "next": after["phase"],
            "status": after["status"], "error": outcome.error}


def _model_failure(cfg: dict, store, task_id: int | None, phase: str, exc: Exception) -> Outcome:
    """A model call that failed: the step's task is retried while it has
    attempts left (re-raised), and a provider busy for less than [models]
    max_wait_s is waited for (the worker defers the task); on the last
    attempt, past that wait, or for an answer that will not parse, the
    workflow fails with the reason instead of waiting on a dead task."""
    from fleet.skills._models import BudgetExceeded, ModelError, ModelOutputInvalid, ProviderBusy

    if isinstance(exc, BudgetExceeded):  # a [budgets] block: retrying within its period cannot help
        return phases.fail(phase, "budget", str(exc))
    if not isinstance(exc, ModelError):
        raise exc
    if isinstance(exc, ProviderBusy):
        if exc.retry_at - time.time() <= float(cfg["models"]["max_wait_s"]):
            raise exc
        return phases.fail(phase, "model", f"the {phase} phase's model providers are busy past [models] "
                                           f"max_wait_s: {exc}")
    task = store.get(task_id) if task_id is not None else None
    if task is not None and task.attempts < task.max_attempts and not isinstance(exc, ModelOutputInvalid):
        raise exc
    tries = f" after {task.attempts} attempts" if task is not None else ""
    return phases.fail(phase, "model", f"the {phase} phase's model call failed{tries}: {exc}")


def _drop_worktree(ctx) -> None:
    """A workflow that ends without its commit: remove the worktree, and the
    branch when it holds no commit."""
    wf = ctx.wf
    gitwt.remove_worktree(wf["repo"], ctx.worktree())
    base = ctx.state.get("base_commit")
    if base and not gitwt.branch_has_commits(wf["repo"], wf["id"], base):
        gitwt.delete_branch(wf["repo"], wf["id"])


def cancel(ctx) -> Outcome:
    """Stop at this phase boundary: the worktree goes, the branch stays only if it has commits."""
    _drop_worktree(ctx)
    return Outcome("cancelled", ctx.wf["phase"], status="CANCELLED", error="cancelled by request")
