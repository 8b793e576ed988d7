"""Loopback HTTP servers for the network skills' tests, serving responses in the
recorded formats of the real services: the arXiv API's Atom feed, SearxNG's JSON,
Brave's and Tavily's JSON, DuckDuckGo's HTML results page, and plain web pages.

    with NetServer() as srv:
        srv.route("GET", "/api/query", arxiv_feed(PAPERS), "application/atom+xml")
        ... skill runs against srv.url ...
        assert srv.requests[0].query["search_query"] == ["all:queue"]
"""

from __future__ import annotations

import dataclasses
import html
import http.server
import json
import socketserver
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")

    def form(self) -> dict:
        return parse_qs(self.body.decode())


@dataclasses.dataclass
class Route:
    status: int
    body: bytes
    content_type: str
    check: Callable[[Seen], tuple[int, bytes] | None] | None = None


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class NetServer:
    """A scriptable HTTP server on 127.0.0.1; unknown paths get 404."""

    def __init__(self):
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[Seen] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length) if length else b"")
                owner.requests.append(seen)
                route = owner.routes.get((self.command, parts.path))
                status, body, ctype = 404, b"not found", "text/plain"
                if route is not None:
                    status, body, ctype = route.status, route.body, route.content_type
                    if route.check is not None:
                        override = route.check(seen)
                        if override is not None:
                            status, body = override
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def route(self, method: str, path: str, body, content_type: str = "application/json", *, status: int = 200,
              check: Callable[[Seen], tuple[int, bytes] | None] | None = None) -> None:
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.routes[(method, path)] = Route(status, data, content_type, check)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


# -- recorded formats ---------------------------------------------------------
def arxiv_feed(papers: list[dict], total: int | None = None) -> str:
    """An arXiv API response (Atom 1.0 with the arxiv and opensearch namespaces),
    shaped like export.arxiv.org/api/query output."""
    entries = []
    for p in papers:
        authors = "".join(f"<author><name>{html.escape(a)}</name></author>" for a in p["authors"])
        cats = "".join(f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>' for c in p["categories"])
        entries.append(f"""
  <entry>
    <id>http://arxiv.org/abs/{p['id']}</id>
    <updated>{p.get('updated', '2024-01-02T00:00:00Z')}</updated>
    <published>{p.get('published', '2024-01-01T00:00:00Z')}</published>
    <title>{html.escape(p['title'])}</title>
    <summary>  {html.escape(p['abstract'])}
</summary>
    {authors}
    <arxiv:doi xmlns:arxiv="http://arxiv.org/schemas/atom">{p.get('doi', '')}</arxiv:doi>
    <link title="doi" href="http://dx.doi.org/{p.get('doi', '')}" rel="related"/>
    <arxiv:comment xmlns:arxiv="http://arxiv.org/schemas/atom">{p.get('comment', '12 pages')}</arxiv:comment>
    <link href="http://arxiv.org/abs/{p['id']}" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/{p['id']}" rel="related" type="application/pdf"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="{p['categories'][0]}" scheme="http://arxiv.org/schemas/atom"/>
    {cats}
  </entry>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <link href="http://arxiv.org/api/query?search_query%3Dall%3Aqueue" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=all:queue&amp;id_list=&amp;start=0&amp;max_results=10</title>
  <id>http://arxiv.org/api/cHxbiOdZaP56ODnBPIenZhzg5f8</id>
  <updated>2024-01-03T00:00:00-05:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{total if total is not None else len(papers)}</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{len(papers)}</opensearch:itemsPerPage>{''.join(entries)}
</feed>
"""


def arxiv_error_feed(message: str) -> str:
    """What the arXiv API returns for a malformed query: one entry titled Error."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="html">ArXiv Query: search_query=&amp;id_list=bad</title>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_bad</id>
    <title>Error</title>
    <summary>{html.escape(message)}</summary>
    <updated>2024-01-03T00:00:00-05:00</updated>
    <link href="http://arxiv.org/api/errors#incorrect_id_format_for_bad" rel="alternate" type="text/html"/>
    <author><name>arXiv api core</name></author>
  </entry>
</feed>
"""


def searxng_json(query: str, results: list[dict]) -> dict:
    """SearxNG /search?format=json."""
    return {"query": query, "number_of_results": len(results), "results": [
        {"url": r["url"], "title": r["title"], "content": r["snippet"], "engine": "duckduckgo",
         "parsed_url": list(urlsplit(r["url"])), "template": "default.html", "engines": ["duckduckgo", "brave"],
         "positions": [i + 1], "score": 2.0 / (i + 1), "category": "general"}
        for i, r in enumerate(results)], "answers": [], "corrections": [], "infoboxes": [], "suggestions": [],
        "unresponsive_engines": []}


def brave_json(query: str, results: list[dict]) -> dict:
    """Brave Search API /res/v1/web/search."""
    return {"type": "search", "query": {"original": query, "more_results_available": True},
            "mixed": {"type": "mixed", "main": [{"type": "web", "index": i, "all": False} for i in range(len(results))]},
            "web": {"type": "search", "family_friendly": True, "results": [
                {"title": r["title"], "url": r["url"], "is_source_local": False, "is_source_both": False,
                 "description": r["snippet"], "page_age": "2024-01-01T00:00:00", "language": "en",
                 "profile": {"name": urlsplit(r["url"]).hostname, "url": r["url"]}, "age": "January 1, 2024"}
                for r in results]}}


def tavily_json(query: str, results: list[dict]) -> dict:
    """Tavily /search."""
    return {"query": query, "follow_up_questions": None, "answer": None, "images": [], "response_time": 0.42,
            "results": [{"title": r["title"], "url": r["url"], "content": r["snippet"], "score": 0.9 - i * 0.1,
                         "raw_content": None} for i, r in enumerate(results)]}


def duckduckgo_html(results: list[dict], *, ad: bool = True) -> str:
    """html.duckduckgo.com/html/ results page (links wrapped in /l/?uddg=...), with one ad."""
    blocks = []
    if ad:
        blocks.append("""<div class="result results_links results_links_deep result--ad">
  <div class="links_main links_deep result__body"><h2 class="result__title">
  <a rel="nofollow" class="result__a" href="https://duckduckgo.com/y.js?ad_domain=ads.example&amp;u3=x">Sponsored thing</a></h2>
  <a class="result__snippet" href="https://duckduckgo.com/y.js?u3=x">Buy now</a></div></div>""")
    for r in results:
        wrapped = "//duckduckgo.com/l/?uddg=" + quote(r["url"], safe="") + "&amp;rut=abc123"
        blocks.append(f"""<div class="result results_links results_links_deep web-result ">
  <div class="links_main links_deep result__body">
    <h2 class="result__title"><a rel="nofollow" class="result__a" href="{wrapped}">{html.escape(r['title'])}</a></h2>
    <div class="result__extras"><div class="result__extras__url">
      <a class="result__url" href="{wrapped}">{html.escape(urlsplit(r['url']).hostname or '')}</a></div></div>
    <a class="result__snippet" href="{wrapped}">{html.escape(r['snippet']).replace('queue', '<b>queue</b>')}</a>
    <div class="clear"></div></div></div>""")
    return ("<!DOCTYPE html><html><head><title>query at DuckDuckGo</title></head><body>"
            "<div id=\"links\" class=\"results\">" + "\n".join(blocks) + "</div></body></html>")
