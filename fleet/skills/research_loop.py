"""research_loop skill: iterative research on a question. Each round searches
(the [search] provider, through web_search), fetches and reads the best new
sources, has the model note what they say (each claim citing the source URLs)
and asks it for a small JSON verdict: answered, or the next query. Stops when
answered, at max_rounds or at a budget refusal, and writes
knowledge/research/<slug>.md in which every claim cites a fetched source: a
citation of any URL the loop did not fetch is dropped here, in code.
"""

from __future__ import annotations

import re

from fleet.costs import BudgetExceeded
from fleet.skills import web_search
from fleet.skills._common import (
    SkillError,
    agent_name,
    atomic_write_text,
    clip,
    knowledge_path,
    require_network,
    safe_name,
    skill_options,
    utc_stamp,
)
from fleet.skills._llm import ask_model
from fleet.skills._web import fetch_text

DESCRIPTION = ("Research a question iteratively: web search, fetch and read the best sources, note cited "
               "findings, ask the model whether the question is answered, else search again; report with every "
               "claim cited to a fetched page in knowledge/research/.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = True
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 1800
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "minLength": 1, "maxLength": 2000, "description": "what to find out"},
        "max_rounds": {"type": "integer", "minimum": 1, "maximum": 20,
                       "description": "most search rounds (default [skills.research_loop] max_rounds)"},
        "sources_per_round": {"type": "integer", "minimum": 1, "maximum": 10},
        "context": {"type": "string", "maxLength": 4000, "description": "background: why this is asked"},
        "for_task": {"type": "integer", "minimum": 1,
                     "description": "the task whose 'more info' answer asked for this research"},
        "agent": {"type": "string", "maxLength": 64},
    },
    "required": ["question"],
    "additionalProperties": False,
}

CITATIONS = {"type": "array", "items": {"type": ["string", "integer"]}}  # URLs (or [n] of the pages shown)
NOTES_SCHEMA = {
    "type": "object",
    "properties": {"claims": {"type": "array", "items": {
        "type": "object", "properties": {"claim": {"type": "string"}, "sources": CITATIONS},
        "required": ["claim", "sources"]}}},
    "required": ["claims"],
}
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"answered": {"type": "boolean"}, "answer": {"type": "string"}, "answer_sources": CITATIONS,
                   "next_query": {"type": "string"}},
    "required": ["answered"],
}


def normalise_url(url: str) -> str:
    """A URL as compared for citations: no fragment, no trailing slash, scheme and host lower-case."""
    url = str(url).strip().strip("<>").split("#", 1)[0]
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?]*)(.*)$", url)
    if m:
        url = m.group(1).lower() + m.group(2).lower() + m.group(3)
    return url.rstrip("/")


class Sources:
    """The pages the loop fetched, numbered from 1; the only things a claim may cite."""

    def __init__(self):
        self.items: list[dict] = []
        self._by_url: dict[str, int] = {}

    def add(self, page: dict, asked_url: str) -> int:
        n = len(self.items) + 1
        self.items.append({"n": n, "url": page["url"], "title": page.get("title") or page["url"],
                           "text": page["text"]})
        for u in (asked_url, page["url"]):
            self._by_url.setdefault(normalise_url(u), n)
        return n

    def seen(self, url: str) -> bool:
        return normalise_url(url) in self._by_url

    def resolve(self, citation) -> int | None:
        """The number of the fetched source a citation names (its URL, or its
        number as [n] / n), or None when it names nothing that was fetched."""
        if isinstance(citation, bool):
            return None
        if isinstance(citation, int):
            return citation if 1 <= citation <= len(self.items) else None
        text = str(citation).strip()
        m = re.fullmatch(r"\[?(\d+)\]?", text)
        if m:
            n = int(m.group(1))
            return n if 1 <= n <= len(self.items) else None
        return self._by_url.get(normalise_url(text))


def checked_claim(text: str, citations, sources: Sources, dropped: list[dict]) -> dict | None:
    """A claim with only its citations of fetched sources; those of anything
    else go to `dropped`. None when no fetched source is left to back it."""
    keep: list[int] = []
    for c in citations if isinstance(citations, list) else [citations]:
        n = sources.resolve(c)
        if n is None:
            dropped.append({"claim": clip(text, 200), "citation": str(c)})
        elif n not in keep:
            keep.append(n)
    return {"claim": text, "sources": keep} if keep and text.strip() else None


def _background(question: str, context: str | None) -> str:
    return f"Question: {question}\n" + (f"Background: {context}\n" if context else "")


def read_sources(question: str, context: str | None, new: list[dict], config: dict, max_chars: int) -> dict:
    pages = "\n\n".join(f"[{s['n']}] {s['url']} ({s['title']})\n---\n{clip(s['text'], max_chars)}\n---" for s in new)
    prompt = (f"You are researching a question from web pages.\n{_background(question, context)}\n"
              f"Pages:\n{pages}\n\nList what these pages say that helps answer the question, as short factual "
              "claims. Each claim cites the URL(s) of the page(s) above that state it, in `sources`. Use only "
              'these pages. Reply with JSON only: {"claims": [{"claim": "...", "sources": ["https://..."]}]}')
    return ask_model(prompt, config, skill="research_loop", json_schema=NOTES_SCHEMA, temperature=0.1).json


def judge(question: str, context: str | None, claims: list[dict], sources: Sources, tried: list[str],
          config: dict) -> dict:
    notes = "\n".join(f"- {c['claim']} " + " ".join(sources.items[n - 1]["url"] for n in c["sources"])
                      for c in claims) or "(nothing found yet)"
    prompt = (f"{_background(question, context)}\nFindings so far, each with the page that states it:\n{notes}\n\n"
              f"Queries already searched: {'; '.join(tried)}\n\nIs the question answered by these findings? "
              'Reply with JSON only: {"answered": true, "answer": "two or three sentences", "answer_sources": '
              '["https://... of the findings used"]} when it is; otherwise {"answered": false, "next_query": '
              '"a new web search query for what is still missing"}.')
    return ask_model(prompt, config, skill="research_loop", json_schema=VERDICT_SCHEMA, temperature=0.1).json


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def add_claim(claims: list[dict], claim: dict) -> None:
    """Keep a claim once: the same words found again add their sources to it."""
    for known in claims:
        if " ".join(known["claim"].lower().split()) == " ".join(claim["claim"].lower().split()):
            known["sources"] += [n for n in claim["sources"] if n not in known["sources"]]
            return
    claims.append(claim)


def render(question: str, result: dict, claims: list[dict], answer: dict | None, sources: Sources,
           dropped: list[dict], agent: str) -> str:
    def cite(ns):
        return "".join(f"[{n}]" for n in ns)

    cited = sorted({n for c in claims for n in c["sources"]} | set((answer or {}).get("sources", [])))
    lines = [f"# Research: {question}", "",
             f"Researched {utc_stamp()} by {agent}: {result['rounds']} round(s), stopped: {result['stopped']}"
             + (f" ({result['stop_detail']})" if result.get("stop_detail") else "") + ".", ""]
    if result.get("for_task"):
        lines += [f"Asked for by a 'more info' answer to task {result['for_task']}.", ""]
    if answer:
        lines += ["## Answer", "", f"{answer['claim']} {cite(answer['sources'])}", ""]
    lines += ["## Findings", ""]
    lines += [f"- {c['claim']} {cite(c['sources'])}" for c in claims] or ["(no finding backed by a fetched source)"]
    lines += ["", "## Sources", ""]
    lines += [f"{s['n']}. [{s['title']}]({s['url']})" + ("" if s["n"] in cited else " (read, not cited)")
              for s in sources.items] or ["(none fetched)"]
    lines += ["", "## Queries", ""] + [f"{i}. {q}" for i, q in enumerate(result["queries"], 1)]
    if dropped:  # named in the task's result, never here: a page not read backs nothing
        claims_lost = len({d["claim"] for d in dropped} - {clip(c["claim"], 200) for c in claims}
                          - ({clip(answer["claim"], 200)} if answer else set()))
        lines += ["", f"{_count(len(dropped), 'citation')} of pages never fetched "
                  f"{'was' if len(dropped) == 1 else 'were'} dropped"
                  + (f", and {_count(claims_lost, 'claim')} left with no fetched source." if claims_lost else ".")]
    return "\n".join(lines) + "\n"


def run(payload: dict, config: dict, log) -> dict:
    require_network(config, "research_loop")
    opts = skill_options(config, "research_loop")
    question = payload["question"].strip()
    if not question:
        raise SkillError("research_loop: the question is empty; say what to find out")
    context = (payload.get("context") or "").strip() or None
    max_rounds = int(payload.get("max_rounds") or opts["max_rounds"])
    per_round = int(payload.get("sources_per_round") or opts["sources_per_round"])
    max_chars = int(opts["max_source_chars"])
    sources, claims, dropped, failed, tried = Sources(), [], [], [], []
    answer, stopped, detail = None, "max_rounds", None
    query = clip(question, 400)
    rounds = 0
    try:
        while rounds < max_rounds:
            rounds += 1
            tried.append(query)
            found = web_search.run({"query": query, "max_results": int(opts["search_results"]), "save": False},
                                   config, log)
            new = []
            for hit in found["results"]:
                if len(new) >= per_round:
                    break
                if sources.seen(hit["url"]) or hit["url"] in failed:
                    continue
                try:
                    page = fetch_text(config, "research_loop", hit["url"], max_chars=max_chars * 4)
                except SkillError as exc:
                    failed.append(hit["url"])
                    log.warning("research_loop: round %d: skipped %s: %s", rounds, hit["url"], exc)
                    continue
                n = sources.add(page, hit["url"])
                new.append(sources.items[n - 1])
            log.info("research_loop: round %d: %r gave %d results, %d new pages read", rounds, query,
                     found["count"], len(new))
            if new:
                notes = read_sources(question, context, new, config, max_chars)
                for item in notes.get("claims") or []:
                    claim = checked_claim(str(item.get("claim", "")).strip(), item.get("sources"), sources, dropped)
                    if claim:
                        add_claim(claims, claim)
            verdict = judge(question, context, claims, sources, tried, config)
            if verdict.get("answered") and claims:
                text = str(verdict.get("answer") or "").strip()
                answer = checked_claim(text, verdict.get("answer_sources") or [], sources, dropped) if text else None
                stopped = "answered"
                break
            next_query = clip(" ".join(str(verdict.get("next_query") or "").split()), 400)
            if rounds < max_rounds and (not next_query or next_query in tried):
                stopped, detail = "no_new_query", f"the model gave {'no' if not next_query else 'a repeated'} query"
                break
            query = next_query
    except BudgetExceeded as exc:
        stopped, detail = "budget", str(exc)
        log.warning("research_loop: stopped by a budget in round %d: %s", rounds, exc)
    agent = agent_name(payload, config)
    result = {"question": question, "answered": stopped == "answered", "stopped": stopped, "stop_detail": detail,
              "rounds": rounds, "queries": tried, "claims": claims, "answer": answer,
              "sources": [{"n": s["n"], "url": s["url"], "title": s["title"]} for s in sources.items],
              "dropped_citations": dropped, "failed_fetches": failed, "for_task": payload.get("for_task")}
    path = knowledge_path(config, "research", f"{safe_name(question, 60)}.md")
    atomic_write_text(path, render(question, result, claims, answer, sources, dropped, agent))
    result["report"] = str(path)
    log.info("research_loop %r: %s after %d round(s), %d claims from %d sources, %d citations dropped", question,
             stopped, rounds, len(claims), len(sources.items), len(dropped))
    return result
