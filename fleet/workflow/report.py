"""The workflow report, knowledge/workflows/<id>.md: the plan, each attempt's
diff, every review, every gate's output, what was learned, and tokens and
cost per phase (from the store's step rows)."""

from __future__ import annotations

import json
from pathlib import Path

from fleet.atomic import atomic_write_text


def report_path(cfg: dict, workflow_id: int) -> Path:
    return Path(cfg["paths"]["knowledge"]) / "workflows" / f"{workflow_id}.md"


def _fence(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def render(wf: dict, state: dict, steps: list[dict], current: dict | None = None) -> str:
    """The report as Markdown; `current` is the running phase's own figures
    ({phase, usage}), not yet a step row."""
    out = [f"# Workflow {wf['id']}: {wf['goal']}\n",
           f"- repository: `{wf['repo']}` (base `{wf['base']}`, commit `{state.get('base_commit', '')}`)",
           f"- branch: `{state.get('branch', '')}`, commit `{state.get('commit', '')}` (never pushed)",
           f"- approved by: {state.get('approver')}" + (f" (plan edited by {state['plan_edited_by']})"
                                                       if state.get("plan_edited_by") else ""),
           "- models: " + ", ".join(f"{k} {v['provider']}/{v['model']}" for k, v in state.get("roles", {}).items()),
           "", "## Plan\n", _fence(json.dumps(state.get("plan"), indent=2, ensure_ascii=False), "json")]
    if state.get("lessons_used"):
        out += ["Lessons given to the planner:\n"] + [f"- {t}" for t in state["lessons_used"]] + [""]
    out.append("## Diffs\n")
    for d in state.get("diffs", []):
        how = "applied" if d.get("applies") else f"did not apply: {d.get('git', '')}"
        out += [f"### Attempt {d['number']} by {d['by']} ({how})\n", _fence(d["diff"] or "(no diff)", "diff")]
    out.append("## Reviews\n")
    for r in state.get("reviews", []):
        out += [f"### Diff {r['diff']}: {r['verdict']} by {r['by']}\n",
                *[f"- finding: {f}" for f in r.get("findings", [])],
                *[f"- criterion met: {c}" for c in r.get("criteria_met", [])], ""]
    out.append("## Gates\n")
    for g in state.get("gates", []):
        out.append(f"### Diff {g['diff']}\n")
        for res in g["results"]:
            out += [f"**{res['name']}** {'passed' if res['ok'] else 'FAILED'} (`{res['command']}`)\n",
                    _fence(res["output"] or "(no output)")]
    if state.get("learned"):
        out += ["## Learned\n", *([f"- the learner did not answer: {state['learned']['error']}"]
                                  if state["learned"].get("error") else []),
                *[f"- lesson: {t}" for t in state["learned"]["lessons"]],
                *[f"- rule {v['name']}: {'kept' if v['kept'] else 'dropped'} ({v['why']})"
                  for v in state["learned"]["rules"]], ""]
    out += ["## Tokens and cost per phase\n", "| step | phase | outcome | model calls | input tokens | "
            "output tokens | cost USD |", "| --- | --- | --- | --- | --- | --- | --- |"]
    total = 0.0
    for s in steps:
        total += s["cost_usd"]
        out.append(f"| {s['step']} | {s['phase']} | {s['outcome']} | {s['model_calls']} | {s['input_tokens']} | "
                   f"{s['output_tokens']} | {s['cost_usd']:.4f} |")
    if current is not None:
        u = current["usage"]
        total += u["cost_usd"]
        out.append(f"| {wf['step']} | {current['phase']} | (this phase) | {u['model_calls']} | "
                   f"{u['input_tokens']} | {u['output_tokens']} | {u['cost_usd']:.4f} |")
    out.append(f"\nTotal cost: {total:.4f} USD" + (f" of a {wf['budget_usd']:.2f} USD budget"
                                                   if wf.get("budget_usd") else ""))
    return "\n".join(out) + "\n"


def write(ctx, *, final_phase: str) -> str:
    path = report_path(ctx.cfg, ctx.wf["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(ctx.wf, ctx.state, ctx.store.workflow_steps(ctx.wf["id"]),
                  current={"phase": final_phase, "usage": ctx.usage})
    atomic_write_text(path, text)
    return str(path)
