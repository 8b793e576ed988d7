"""web_search skill: search the web through the provider chosen in [search]
(a SearxNG instance, Brave or Tavily with an API key from the secrets file, or
DuckDuckGo's HTML page); results normalised to {title, url, snippet}. Refused in
offline mode.
"""

from __future__ import annotations

import html.parser
from urllib.parse import parse_qs, unquote, urlsplit

from fleet.skills._common import (
    SkillError,
    atomic_write_json,
    knowledge_path,
    safe_name,
    today,
    utc_stamp,
)
from fleet.skills._web import http_request, search_settings

DESCRIPTION = ("Search the web with the configured provider (SearxNG, Brave, Tavily or DuckDuckGo); "
               "returns normalised results {title, url, snippet}.")
REQUIRES_MODEL = False
REQUIRES_NETWORK = True
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 120
PROVIDERS = ("searxng", "brave", "tavily", "duckduckgo")
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 400},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 50},
        "provider": {"enum": ["searxng", "brave", "tavily", "duckduckgo"], "description": "override [search] provider"},
        "save": {"type": "boolean", "description": "save results under knowledge/research/search/ (default true)"},
    },
    "required": ["query"],
    "additionalProperties": False,
}
SECRET_KEYS = {"brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY"}


def _api_key(config: dict, provider: str) -> str:
    from fleet.secret_file import get_secret

    key_name = SECRET_KEYS[provider]
    value = get_secret(config, key_name)
    if not value:
        raise SkillError(f"web_search: provider {provider} needs an API key; set it with "
                         f"`lead_client.py secret set {key_name} -` (or the {key_name} environment variable), "
                         "or choose another [search] provider")
    return value


def _clean(text) -> str:
    return " ".join(str(text or "").split())


def search_searxng(config: dict, s: dict, query: str, n: int) -> list[dict]:
    base = s["searxng_url"].rstrip("/")
    if not base:
        raise SkillError("web_search: [search] searxng_url is empty; set it to your SearxNG instance "
                         "(e.g. http://localhost:8888) with the JSON format enabled")
    resp = http_request(config, "web_search", "GET", f"{base}/search",
                        params={"q": query, "format": "json", "safesearch": 1})
    try:
        data = resp.json()
    except ValueError:
        raise SkillError(f"web_search: {base} did not return JSON; enable 'json' under search.formats "
                         "in the SearxNG settings.yml") from None
    return [{"title": r.get("title"), "url": r.get("url"), "snippet": r.get("content"), "engine": r.get("engine")}
            for r in data.get("results", [])][:n]


def search_brave(config: dict, s: dict, query: str, n: int) -> list[dict]:
    resp = http_request(config, "web_search", "GET", s["brave_url"], params={"q": query, "count": min(n, 20)},
                        headers={"Accept": "application/json", "X-Subscription-Token": _api_key(config, "brave")})
    try:
        data = resp.json()
    except ValueError:
        raise SkillError("web_search: Brave returned a reply that is not JSON") from None
    return [{"title": r.get("title"), "url": r.get("url"), "snippet": r.get("description"), "age": r.get("age")}
            for r in ((data.get("web") or {}).get("results") or [])][:n]


def search_tavily(config: dict, s: dict, query: str, n: int) -> list[dict]:
    key = _api_key(config, "tavily")
    resp = http_request(config, "web_search", "POST", s["tavily_url"],
                        json_body={"query": query, "max_results": min(n, 20), "search_depth": "basic"},
                        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        data = resp.json()
    except ValueError:
        raise SkillError("web_search: Tavily returned a reply that is not JSON") from None
    return [{"title": r.get("title"), "url": r.get("url"), "snippet": r.get("content"), "score": r.get("score")}
            for r in data.get("results", [])][:n]


class _DuckParser(html.parser.HTMLParser):
    """Results of DuckDuckGo's HTML endpoint: a.result__a (title, link) and .result__snippet."""

    VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "wbr", "source"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.results: list[dict] = []
        self._field: str | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if tag == "a" and "result__a" in classes:
            self.results.append({"title": "", "url": _unwrap_duck(a.get("href") or ""), "snippet": ""})
            self._field, self._depth = "title", 0
        elif "result__snippet" in classes and self.results:
            self._field, self._depth = "snippet", 0
        elif self._field and tag in self.VOID:
            self.results[-1][self._field] += " "
        elif self._field:
            self._depth += 1

    def handle_endtag(self, tag):
        if self._field and tag not in self.VOID:
            if self._depth == 0:
                self._field = None
            else:
                self._depth -= 1

    def handle_data(self, data):
        if self._field and self.results:
            self.results[-1][self._field] += data


def _unwrap_duck(href: str) -> str:
    """DuckDuckGo wraps links as //duckduckgo.com/l/?uddg=<encoded url>."""
    parts = urlsplit(href if "://" in href else "https:" + href if href.startswith("//") else href)
    if parts.path.startswith("/l/"):
        target = parse_qs(parts.query).get("uddg")
        if target:
            return unquote(target[0])
    return href


def search_duckduckgo(config: dict, s: dict, query: str, n: int) -> list[dict]:
    resp = http_request(config, "web_search", "POST", s["duckduckgo_url"], data={"q": query},
                        headers={"Accept": "text/html"})
    parser = _DuckParser()
    parser.feed(resp.text)
    parser.close()
    results = [r for r in parser.results if r["url"].startswith(("http://", "https://"))
               and "duckduckgo.com/y.js" not in r["url"]]  # sponsored links
    if not results and "anomaly" in resp.text.lower():
        raise SkillError("web_search: DuckDuckGo answered with a bot check instead of results; "
                         "try later or configure a SearxNG instance")
    return results[:n]


SEARCHERS = {"searxng": search_searxng, "brave": search_brave, "tavily": search_tavily, "duckduckgo": search_duckduckgo}


def run(payload: dict, config: dict, log) -> dict:
    s = search_settings(config)
    provider = payload.get("provider") or s["provider"]
    if provider not in SEARCHERS:
        raise SkillError(f"web_search: unknown [search] provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    n = int(payload.get("max_results") or s["max_results"])
    query = payload["query"].strip()
    raw = SEARCHERS[provider](config, s, query, n)
    results, seen = [], set()
    for r in raw:
        url = _clean(r.get("url"))
        if not url or url in seen:
            continue
        seen.add(url)
        item = {"title": _clean(r.get("title")) or url, "url": url, "snippet": _clean(r.get("snippet"))}
        results.append(item)
    log.info("web_search via %s: %d results for %r", provider, len(results), query)
    out = {"query": query, "provider": provider, "count": len(results), "results": results, "fetched_at": utc_stamp()}
    if payload.get("save", True):
        path = knowledge_path(config, "research", "search", f"{safe_name(query, 60)}_{provider}_{today()}.json")
        atomic_write_json(path, out)
        out["saved_to"] = str(path)
    return out
