"""The phases of a workflow. Each takes a StepContext (the workflow row, its
state, the model helper) and returns an Outcome naming the next phase; none
writes the store itself (the engine advances the workflow once, after it).
Every phase can be re-run after a crash: execute resets the worktree first,
done finds its commit again."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from fleet.skills._hitl import NeedsHuman, answer_text

from . import gates, gitwt, report, roles, rules

PLAN_SCHEMA = {
    "type": "object",
    "required": ["goal", "steps", "files", "criteria"],
    "properties": {
        "goal": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "string"}},
        "files": {"type": "array", "items": {"type": "string"}},
        "criteria": {"type": "array", "items": {"type": "string"}},
    },
}
VERDICT_SCHEMA = {
    "type": "object",
    "required": ["verdict"],
    "properties": {
        "verdict": {"type": "string", "enum": ["approve", "reject"]},
        "findings": {"type": "array", "items": {"type": "string"}},
        "criteria_met": {"type": "array", "items": {"type": "string"}},
    },
}
LESSONS_SCHEMA = {
    "type": "object",
    "required": ["lessons"],
    "properties": {
        "lessons": {"type": "array", "items": {"type": "string"}},
        "rules": {"type": "array", "items": {"type": "object"}},
    },
}

PLANNER_SYSTEM = ("You are the planner of a code change. Answer with JSON only: {\"goal\": str, \"steps\": [str], "
                  "\"files\": [paths you expect to touch], \"criteria\": [acceptance criteria, each checkable]}.")
EXECUTOR_SYSTEM = ("You are the executor of an approved plan. Answer with one unified diff (git diff format, paths "
                   "a/... b/...) against the files shown, and nothing else.")
REVIEWER_SYSTEM = ("You are the reviewer of a diff written by another model. Check it against the plan's acceptance "
                   "criteria. Answer with JSON only: {\"verdict\": \"approve\"|\"reject\", \"findings\": [str], "
                   "\"criteria_met\": [str]}.")
LEARNER_SYSTEM = ("You are the learner. From the failures below extract short lessons for later plans on this "
                  "repository, and where a lesson is a mechanical check, a rule. Answer with JSON only: "
                  "{\"lessons\": [str], \"rules\": [{\"name\": str, \"pattern\": regex matched against added "
                  "lines, \"message\": str}]}.")


@dataclasses.dataclass
class Outcome:
    """How a phase ended: `outcome` (recorded on the step), the next `phase`,
    the workflow's `status` (RUNNING to go on) and an `error` for an end."""

    outcome: str
    phase: str
    status: str = "RUNNING"
    error: str | None = None
    detail: dict | None = None


def fail(phase: str, outcome: str, error: str, **detail) -> Outcome:
    return Outcome(outcome, phase, status="FAILED", error=error, detail=detail or None)


# -- plan -------------------------------------------------------------------
def plan(ctx) -> Outcome:
    wf, st = ctx.wf, ctx.state
    # the lessons that match the goal best, then the newest others of this repo
    lessons = ctx.store.lessons(repo=wf["repo"], query=wf["goal"], limit=5)
    seen = {row["id"] for row in lessons}
    lessons += [row for row in ctx.store.lessons(repo=wf["repo"], limit=5) if row["id"] not in seen]
    lessons = lessons[:5]
    files = gitwt.git(wf["repo"], "ls-tree", "-r", "--name-only", st["base_commit"]).stdout.splitlines()[:200]
    prompt = (f"ROLE: planner\nGOAL: {wf['goal']}\n\nFILES IN THE REPOSITORY:\n" + "\n".join(files)
              + "\n\nLESSONS FROM EARLIER FAILURES ON THIS REPOSITORY:\n"
              + ("\n".join(f"- {row['text']}" for row in lessons) or "(none)"))
    if st.get("plan_feedback"):
        prompt += f"\n\nTHE PERSON WHO APPROVES PLANS ASKED FOR ANOTHER PLAN:\n{st['plan_feedback']}"
    st["lessons_used"] = [row["text"] for row in lessons]
    result = ctx.ask("planner", prompt, system=PLANNER_SYSTEM, json_schema=PLAN_SCHEMA)
    the_plan = result.json
    if not [c for c in the_plan.get("criteria", []) if str(c).strip()]:
        retry = prompt + ("\n\nYOUR PLAN HAS NO ACCEPTANCE CRITERIA. A plan without criteria cannot be executed: "
                          "send the plan again with at least one checkable criterion.")
        the_plan = ctx.ask("planner", retry, system=PLANNER_SYSTEM, json_schema=PLAN_SCHEMA).json
        if not [c for c in the_plan.get("criteria", []) if str(c).strip()]:
            return fail("plan", "no_criteria", "the planner's plan had no acceptance criteria twice; "
                                               "no criteria, no execution", plan=the_plan)
    st["plan"] = the_plan
    return Outcome("planned", "approve", detail={"plan": the_plan})


# -- human gate -------------------------------------------------------------
def approve(ctx) -> Outcome:
    st = ctx.state
    answer = answer_text(ctx.payload)
    if answer is None:
        raise NeedsHuman(f"Approve the plan of workflow {ctx.wf['id']} ({ctx.wf['goal']})? "
                         f"Answer approve, reject (with a reason) or edit (with a revised plan).\n"
                         + json.dumps(st["plan"], indent=2, ensure_ascii=False),
                         ["approve", "reject", "edit"])
    raw = ctx.payload.get("human_answer")
    who = ctx.answered_by()
    if answer in ("approve", "approved", "yes", "y", "ok", "accept", "go"):
        st["approver"] = who
        return Outcome("approved", "execute", detail={"approver": who})
    if answer == "edit":
        revised = raw.get("plan") if isinstance(raw, dict) else None
        if not isinstance(revised, dict) or not [c for c in revised.get("criteria", []) if str(c).strip()]:
            return fail("approve", "bad_edit", f"{who} sent an edited plan without acceptance criteria")
        st["plan"], st["approver"], st["plan_edited_by"] = revised, who, who
        return Outcome("edited", "execute", detail={"approver": who, "plan": revised})
    text = (raw.get("reason") or raw.get("text") if isinstance(raw, dict) else None) or ""
    if answer in ("feedback", "more_info") and text.strip():
        # the person wants another plan: the planner gets their words
        st["plan_feedback"] = f"{who}: {text.strip()}"
        return Outcome("replan", "plan", detail={"by": who, "feedback": text.strip()})
    reason = text.strip() or "no reason given"
    return Outcome("rejected", "approve", status="REJECTED", error=f"plan rejected by {who}: {reason}",
                   detail={"by": who, "reason": reason})


# -- execute ----------------------------------------------------------------
_DIFF_START = re.compile(r"^(diff --git |--- )", re.MULTILINE)


def extract_diff(text: str) -> str:
    """The unified diff in a model's reply (fences and prose around it dropped)."""
    fenced = re.search(r"```(?:diff|patch)?\n(.*?)```", text, re.DOTALL)
    body = fenced.group(1) if fenced else text
    m = _DIFF_START.search(body)
    if m is None:
        return ""
    diff = body[m.start():]
    return diff if diff.endswith("\n") else diff + "\n"


def execute(ctx) -> Outcome:
    wf, st, settings = ctx.wf, ctx.state, ctx.wf["settings"]
    wt = ctx.worktree()
    gitwt.ensure_worktree(wf["repo"], wt, wf["id"], st["base_commit"])
    limit = int(settings["max_file_bytes"])
    shown = []
    for rel in st["plan"].get("files", [])[:20]:
        text = gitwt.read_bounded(wt, rel, limit)
        shown.append(f"--- FILE {rel} ---\n{text if text is not None else '(does not exist yet)'}")
    who = st["executor"]
    feedback = st.get("feedback")
    prompt = (f"ROLE: executor\nGOAL: {wf['goal']}\nPLAN:\n{json.dumps(st['plan'], indent=2)}\n\n"
              + "\n".join(shown)
              + (f"\n\nFEEDBACK ON YOUR LAST DIFF (write a new diff against the files above):\n{feedback}"
                 if feedback else ""))
    result = ctx.ask(who, prompt, system=EXECUTOR_SYSTEM)
    diff = extract_diff(result.text)
    number = len(st.setdefault("diffs", [])) + 1
    entry = {"number": number, "by": roles.describe(st["roles"][who]), "diff": diff}
    st["diffs"].append(entry)
    problem = "the reply held no unified diff" if not diff else gitwt.apply_check(wt, diff)
    if problem:
        entry["applies"] = False
        entry["git"] = problem
        return ctx.attempt_failed("execute", "diff_rejected", f"git apply --check refused the diff:\n{problem}")
    gitwt.apply(wt, diff)
    entry["applies"] = True
    # The learned rules cost no model call: a diff they catch goes straight
    # back to the executor, before any review.
    caught = rules.gate(rules.load(ctx.cfg, wf["repo"]), diff)
    if caught is not None and not caught["ok"]:
        st["learn"] = True
        st.setdefault("gates", []).append({"diff": number, "results": [caught]})
        return ctx.attempt_failed("execute", "rule_fired", f"GATE rules FAILED:\n{caught['output']}",
                                  gates=["rules"])
    st.pop("feedback", None)
    return Outcome("applied", "review", detail={"diff": number, "by": entry["by"]})


# -- cross-model review -----------------------------------------------------
def review(ctx) -> Outcome:
    from fleet.skills._models import BudgetExceeded, ModelError

    st = ctx.state
    executor, reviewer = st["roles"][st["executor"]], st["roles"][st["reviewer"]]
    if roles.same(executor, reviewer):
        return fail("review", "self_review", f"the reviewer ({roles.describe(reviewer)}) is the executor; "
                                             "self-review is not review")
    diff = st["diffs"][-1]["diff"]
    prompt = (f"ROLE: reviewer\nGOAL: {ctx.wf['goal']}\nACCEPTANCE CRITERIA:\n"
              + "\n".join(f"- {c}" for c in st["plan"]["criteria"]) + f"\n\nDIFF:\n{diff}")
    try:
        result = ctx.ask(st["reviewer"], prompt, system=REVIEWER_SYSTEM, json_schema=VERDICT_SCHEMA)
    except (ModelError, BudgetExceeded) as exc:
        if isinstance(exc, BudgetExceeded) or ctx.budget_spent():
            raise
        # Fail closed: a review that did not happen, or did not parse, is not an approval.
        return fail("review", "no_review", f"no review from {roles.describe(reviewer)} (fail closed: a missing "
                                           f"or unreadable review is not an approval): {exc}")
    verdict = result.json
    entry = {"diff": st["diffs"][-1]["number"], "by": roles.describe(reviewer), **verdict}
    st.setdefault("reviews", []).append(entry)
    if verdict["verdict"] == "approve":
        return Outcome("approved", "gates", detail=entry)
    st["handoffs"] = st.get("handoffs", 0) + 1
    st["learn"] = True
    if st["handoffs"] > int(ctx.wf["settings"]["handoffs"]):
        return fail("review", "rejected", f"the review rejected the change {st['handoffs']} times "
                                          f"(handoffs = {ctx.wf['settings']['handoffs']}); see the report")
    # Role swap: the reviewer implements with its findings, the executor reviews.
    st["executor"], st["reviewer"] = st["reviewer"], st["executor"]
    st["feedback"] = "The reviewer rejected it:\n" + "\n".join(f"- {f}" for f in verdict.get("findings", []))
    return Outcome("rejected", "execute", detail=entry)


# -- gates ------------------------------------------------------------------
def run_gates(ctx) -> Outcome:
    wf, st, settings = ctx.wf, ctx.state, ctx.wf["settings"]
    wt = ctx.worktree()
    changed = gitwt.changed_files(wt)
    rule_set = rules.load(ctx.cfg, wf["repo"])
    results = gates.run_gates(wt, changed, test_command=settings.get("test_command") or "",
                              timeout_s=float(settings["gate_timeout_s"]),
                              rules_check=lambda w, c: rules.gate(rule_set, gitwt.staged_diff(w)))
    st.setdefault("gates", []).append({"diff": st["diffs"][-1]["number"], "results": results})
    failed = [r for r in results if not r["ok"]]
    if not failed:
        return Outcome("passed", "done", detail={"gates": [r["name"] for r in results]})
    st["learn"] = True
    text = "\n\n".join(f"GATE {r['name']} FAILED ({r['command']}):\n{r['output']}" for r in failed)
    return ctx.attempt_failed("gates", "failed", text, gates=[r["name"] for r in failed])


# -- done -------------------------------------------------------------------
def done(ctx) -> Outcome:
    wf, st = ctx.wf, ctx.state
    wt = ctx.worktree()
    r = st["roles"]
    message = (f"{wf['goal']}\n\nPlanned by {roles.describe(r['planner'])}, implemented by "
               f"{st['diffs'][-1]['by']}, reviewed by {st['reviews'][-1]['by']}; approved by "
               f"{st.get('approver')} (Fleet workflow {wf['id']}).")
    if Path(wt, ".git").exists():
        sha = gitwt.commit_once(wt, wf["id"], message)
    else:  # a re-run after the worktree was removed: the commit is on the branch
        sha = gitwt.git(wf["repo"], "rev-parse", f"refs/heads/{gitwt.branch_name(wf['id'])}").stdout.strip()
    st["commit"], st["branch"] = sha, gitwt.branch_name(wf["id"])
    st["report"] = report.write(ctx, final_phase="done")
    gitwt.remove_worktree(wf["repo"], wt)
    if st.get("learn"):
        return Outcome("committed", "learn", detail={"commit": sha})
    return Outcome("committed", "done", status="DONE", detail={"commit": sha})


# -- learn ------------------------------------------------------------------
def learn(ctx) -> Outcome:
    wf, st = ctx.wf, ctx.state
    failures = [f"REVIEW REJECTED diff {r['diff']}: " + "; ".join(r.get("findings", []))
                for r in st.get("reviews", []) if r.get("verdict") == "reject"]
    failing_diffs = []
    for g in st.get("gates", []):
        bad = [x for x in g["results"] if not x["ok"]]
        if bad:
            failing_diffs.append(g["diff"])
            failures.append(f"GATES FAILED on diff {g['diff']}: "
                            + "; ".join(f"{x['name']}: {x['output'][:500]}" for x in bad))
    for r in st.get("reviews", []):
        if r.get("verdict") == "reject":
            failing_diffs.append(r["diff"])
    diffs = {d["number"]: d["diff"] for d in st.get("diffs", [])}
    accepted = diffs.get(st["diffs"][-1]["number"], "")
    prompt = (f"ROLE: learner\nGOAL: {wf['goal']}\nFAILURES:\n" + "\n".join(failures)
              + "\n\nFAILING DIFFS:\n" + "\n".join(diffs.get(n, "") for n in sorted(set(failing_diffs)))
              + f"\n\nACCEPTED DIFF:\n{accepted}")
    from fleet.skills._models import BudgetExceeded, ModelError

    from .engine import BudgetSpent

    try:
        result = ctx.ask("learner", prompt, system=LEARNER_SYSTEM, json_schema=LESSONS_SCHEMA)
    except (ModelError, BudgetExceeded, BudgetSpent) as exc:
        # the change is committed: a learner that cannot answer costs the lessons, not the workflow
        st["learned"] = {"lessons": [], "rules": [], "error": str(exc)}
        st["report"] = report.write(ctx, final_phase="learn")
        return Outcome("not_learned", "done", status="DONE", detail={"error": str(exc)})
    kept_lessons = []
    # a lesson the repo already has (learned again, or a re-run of this phase after a crash) is not kept twice
    had = {row["text"] for row in ctx.store.lessons(repo=wf["repo"], limit=1000)}
    for text in result.json.get("lessons", [])[:5]:
        if isinstance(text, str) and text.strip():
            if text.strip()[:2000] not in had:
                ctx.store.add_lesson(wf["repo"], text.strip()[:2000], workflow_id=wf["id"])
            kept_lessons.append(text.strip())
    proposed = [r for r in result.json.get("rules", []) if isinstance(r, dict)][:5]
    verdicts = rules.vet_and_keep(ctx.cfg, wf["repo"], proposed,
                                  failing=[diffs.get(n, "") for n in sorted(set(failing_diffs))],
                                  accepted=accepted, workflow_id=wf["id"])
    st["learned"] = {"lessons": kept_lessons, "rules": verdicts}
    st["report"] = report.write(ctx, final_phase="learn")
    return Outcome("learned", "done", status="DONE", detail=st["learned"])


PHASES = {"plan": plan, "approve": approve, "execute": execute, "review": review, "gates": run_gates,
          "done": done, "learn": learn}
