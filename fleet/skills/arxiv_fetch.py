"""arxiv_fetch skill: query the arXiv API, parse its Atom feed into papers (id, title,
authors, abstract, dates, categories, links), save them under knowledge/research/arxiv/,
and optionally add a short model-written summary of each.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # nosec B405 - parsing only; expat resolves no external entities

from fleet.skills._common import (
    SkillError,
    atomic_write_json,
    knowledge_path,
    safe_name,
    skill_options,
    today,
    utc_stamp,
)
from fleet.skills._web import http_request

DESCRIPTION = ("Fetch research papers from the arXiv API (the latest by search query, or by ids), parsed from its "
               "Atom feed; optional short model summaries; saved under knowledge/research/arxiv/.")
REQUIRES_MODEL = False  # only when summaries are asked for
REQUIRES_NETWORK = True
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 600
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 500,
                  "description": "arXiv search_query, e.g. 'all:\"task queue\"' or 'cat:cs.DC AND ti:scheduling'"},
        "ids": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z.-]*/?[0-9.]+(v[0-9]+)?$"},
                "minItems": 1, "maxItems": 100},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 100},
        "sort_by": {"enum": ["relevance", "lastUpdatedDate", "submittedDate"]},
        "summarize": {"type": "boolean", "description": "add a short model summary of each paper"},
    },
    "anyOf": [{"required": ["query"]}, {"required": ["ids"]}],
    "additionalProperties": False,
}
NS = {"a": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom",
      "os": "http://a9.com/-/spec/opensearch/1.1/"}


def _text(el, path: str) -> str:
    found = el.find(path, NS)
    return " ".join((found.text or "").split()) if found is not None else ""


def parse_feed(xml_text: str) -> dict:
    """{total, papers: [...]} from an arXiv API Atom feed; raises SkillError on a bad feed."""
    try:
        root = ET.fromstring(xml_text)  # nosec B314 - see import note
    except ET.ParseError as exc:
        raise SkillError(f"arxiv_fetch: the arXiv API returned XML that cannot be parsed ({exc})") from None
    if root.tag != f"{{{NS['a']}}}feed":
        raise SkillError(f"arxiv_fetch: expected an Atom feed from the arXiv API, got <{root.tag}>")
    papers = []
    for entry in root.findall("a:entry", NS):
        entry_id = _text(entry, "a:id")
        title = _text(entry, "a:title")
        if title == "Error":  # the API reports a bad query as an entry titled Error
            raise SkillError(f"arxiv_fetch: the arXiv API rejected the query: {_text(entry, 'a:summary')}")
        links = {(lnk.get("title") or lnk.get("rel") or ""): lnk.get("href") for lnk in entry.findall("a:link", NS)}
        m = re.search(r"arxiv\.org/abs/(.+)$", entry_id)
        primary = entry.find("arxiv:primary_category", NS)
        papers.append({
            "id": m.group(1) if m else entry_id, "title": title, "abstract": _text(entry, "a:summary"),
            "authors": [_text(a, "a:name") for a in entry.findall("a:author", NS)],
            "published": _text(entry, "a:published"), "updated": _text(entry, "a:updated"),
            "categories": [c.get("term") for c in entry.findall("a:category", NS) if c.get("term")],
            "primary_category": primary.get("term") if primary is not None else None,
            "abs_url": links.get("alternate") or entry_id, "pdf_url": links.get("pdf"),
            "doi": _text(entry, "arxiv:doi") or None, "comment": _text(entry, "arxiv:comment") or None,
            "journal_ref": _text(entry, "arxiv:journal_ref") or None,
        })
    total = _text(root, "os:totalResults")
    return {"total": int(total) if total.isdigit() else len(papers), "papers": papers}


def run(payload: dict, config: dict, log) -> dict:
    opts = skill_options(config, "arxiv")
    api = opts["api_url"]
    n = int(payload.get("max_results") or opts["max_results"])
    params: dict = {"start": 0, "max_results": n}
    if payload.get("query"):
        params["search_query"] = payload["query"]
        params["sortBy"] = payload.get("sort_by", "relevance")
        params["sortOrder"] = "descending"
    if payload.get("ids"):
        params["id_list"] = ",".join(payload["ids"])
    resp = http_request(config, "arxiv_fetch", "GET", api, params=params, timeout_s=opts["timeout_s"])
    feed = parse_feed(resp.text)
    log.info("arxiv_fetch: %d papers (of %d matching)", len(feed["papers"]), feed["total"])
    label = payload.get("query") or "ids_" + "_".join(payload["ids"][:3])
    path = knowledge_path(config, "research", "arxiv", f"{safe_name(label, 60)}_{today()}.json")
    out = {"query": payload.get("query"), "ids": payload.get("ids"), "total": feed["total"],
           "count": len(feed["papers"]), "papers": feed["papers"], "fetched_at": utc_stamp(), "saved_to": str(path)}
    atomic_write_json(path, out)
    if payload.get("summarize") and feed["papers"]:
        from fleet.skills._llm import ModelUnavailable, ask_model

        try:
            for paper in feed["papers"]:
                prompt = ("Summarise this arXiv paper for a busy engineer in 2-3 sentences: the problem, the "
                          "method, the main result. Use only the abstract; do not invent numbers.\n\n"
                          f"Title: {paper['title']}\nAuthors: {', '.join(paper['authors'][:8])}\n"
                          f"Abstract: {paper['abstract']}\n\nSummary:")
                reply = ask_model(prompt, config, skill="arxiv_fetch", max_tokens=300)
                paper["summary"] = reply.text.strip()
                paper["summary_model"] = reply.model
        except ModelUnavailable as exc:
            raise SkillError(f"arxiv_fetch: fetched {len(feed['papers'])} papers (saved to {path}) but could not "
                             f"summarise them: {exc}") from None
        atomic_write_json(path, out)
    return out
