"""Cost commands on the usage ledger (fleet.costs / fleet/store/usage.py):
usage by skill|provider|model per day|week|month, usage-delta between two
date ranges, and budget status per skill.
"""

from __future__ import annotations

from .common import EXIT_OK, Ctx, UsageError, print_json, print_table

ARROWS = {"up": "↑", "down": "↓", "flat": "→"}


def _usd(x) -> str:
    return f"${(x or 0):.4f}"


def cmd_usage(ctx: Ctx) -> int:
    from fleet import costs

    a = ctx.args
    rep = costs.usage_report(ctx.store, period=a.period, group_by=a.by)
    if ctx.json:
        print_json(rep)
        return EXIT_OK
    if not rep["rows"]:
        print(f"no model calls in the last {a.period}")
        return EXIT_OK
    rows = [[r["key"], r["calls"], r["failures"], r["input_tokens"], r["output_tokens"], _usd(r["cost_usd"]),
             _usd(r["cache_savings_usd"])] for r in rep["rows"]]
    t = rep["totals"]
    rows.append(["total", t["calls"], t["failures"], t["input_tokens"], t["output_tokens"], _usd(t["cost_usd"]),
                 _usd(t["cache_savings_usd"])])
    print_table([a.by, "calls", "failed", "input tok", "output tok", "cost", "cache savings"], rows,
                title=f"model usage, last {a.period}")
    return EXIT_OK


def cmd_usage_delta(ctx: Ctx) -> int:
    from fleet import costs

    a = ctx.args
    try:
        bounds = [costs.parse_when(x) for x in (a.from_start, a.from_end, a.to_start, a.to_end)]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if bounds[0] >= bounds[1] or bounds[2] >= bounds[3]:
        raise UsageError("each range must start before it ends (FROM_START < FROM_END, TO_START < TO_END)")
    rep = costs.usage_delta(ctx.store, a.from_start, a.from_end, a.to_start, a.to_end, group_by=a.by)
    if ctx.json:
        print_json(rep)
        return EXIT_OK
    if not rep["rows"]:
        print("no model calls in either range")
        return EXIT_OK

    def cell(f: dict, money: bool = False) -> str:
        fmt = _usd if money else (lambda v: f"{v:g}")
        pct = "new" if f["delta_pct"] is None and f["after"] else (f"{f['delta_pct']:+.1f}%" if f["delta_pct"] is not None else "")
        return f"{fmt(f['before'])} -> {fmt(f['after'])} {ARROWS[f['direction']]} {pct}".rstrip()

    print_table([a.by, "calls", "input tokens", "output tokens", "cost"],
                [[r["key"], cell(r["calls"]), cell(r["input_tokens"]), cell(r["output_tokens"]),
                  cell(r["cost_usd"], True)] for r in rep["rows"]])
    return EXIT_OK


def cmd_budget(ctx: Ctx) -> int:
    from fleet import costs

    rows = costs.budget_status(ctx.cfg, ctx.store)
    if ctx.json:
        print_json({"budgets": rows})
        return EXIT_OK
    if not rows:
        print("no budgets configured (set [budgets] global_usd or [budgets.skills.NAME] in fleet.toml)")
        return EXIT_OK
    print_table(["budget", "period", "spent", "limit", "calls", "max calls", "used", "state", "enforcement"],
                [[r["budget"], r["period"], _usd(r["spent_usd"]), _usd(r["limit_usd"]) if r["limit_usd"] else "-",
                  r["calls"], r["max_calls"] or "-", f"{r['percent_used']:.1f}%", r["state"], r["enforcement"]]
                 for r in rows])
    return EXIT_OK


def register(sub, json_parent) -> None:
    by = ("skill", "provider", "model", "agent")
    p = sub.add_parser("usage", parents=[json_parent], help="token use and cost by skill (or provider/model)")
    p.add_argument("--period", choices=("day", "week", "month"), default="day")
    p.add_argument("--by", choices=by, default="skill")
    p.set_defaults(func=cmd_usage)
    p = sub.add_parser("usage-delta", parents=[json_parent], help="compare usage between two ISO date ranges")
    for name in ("from_start", "from_end", "to_start", "to_end"):
        p.add_argument(name, metavar=name.upper())
    p.add_argument("--by", choices=by, default="skill")
    p.set_defaults(func=cmd_usage_delta)
    p = sub.add_parser("budget", parents=[json_parent], help="budget status per skill and fleet-wide")
    p.set_defaults(func=cmd_budget)
