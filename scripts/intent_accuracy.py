#!/usr/bin/env python3
"""Print the offline intent matcher's accuracy on the table of plain
instructions in tests/intent_cases.py (right, wrong, refused, each miss),
and the conductor prompt's size against its token budget.

    .venv/bin/python scripts/intent_accuracy.py [--verbose]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[0:0] = [str(REPO), str(REPO / "tests")]

from intent_cases import INTENT_CASES  # noqa: E402

from fleet.config import load_config  # noqa: E402
from fleet.intent import SYSTEM_PROMPT, conductor_system_prompt, estimate_tokens, rank_skills  # noqa: E402
from fleet.skill_registry import discover  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every instruction, not only the misses")
    args = parser.parse_args()
    cfg = load_config()
    catalogue = discover(cfg)
    threshold = cfg["models"]["intent_min_confidence"]
    counts = {"right": 0, "wrong": 0, "refused": 0}
    for text, want in INTENT_CASES:
        top, confidence = rank_skills(text, catalogue)[0]
        verdict = "refused" if confidence < threshold else "right" if top == want else "wrong"
        counts[verdict] += 1
        if verdict != "right" or args.verbose:
            print(f"  {verdict:7} {confidence:4.2f} {top:16} (meant {want:16}) {text}")
    n = len(INTENT_CASES)
    print(f"offline matcher on {n} instructions (threshold {threshold:.2f}): {counts['right']} right "
          f"({counts['right'] / n:.0%}), {counts['wrong']} wrong, {counts['refused']} refused")
    budget = cfg["models"]["conductor_prompt_tokens"]
    sizes = [len(conductor_system_prompt(text, catalogue, budget)[0]) for text, _ in INTENT_CASES]
    whole = conductor_system_prompt("", catalogue, 10**9)[0]
    print(f"conductor prompt: whole catalogue {len(whole)} chars (~{estimate_tokens(whole)} tokens, "
          f"{len(catalogue)} skills); budgeted to {budget} tokens: at most {max(sizes)} chars "
          f"(~{estimate_tokens('x' * max(sizes))} tokens); instructions alone {len(SYSTEM_PROMPT)} chars")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
