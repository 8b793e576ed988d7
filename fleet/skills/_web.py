"""HTTP for network skills: one place that checks offline mode, sets timeouts and a
User-Agent, caps response sizes, turns transport errors into clear SkillErrors,
and converts HTML to plain text (script/style dropped).
"""

from __future__ import annotations

import html.parser
import json
import re
import time
from typing import Any

import httpx

from fleet.skills._common import SkillError, require_network

MAX_BYTES = 5_000_000


def search_settings(config: dict) -> dict:
    return dict(config["search"])


class WebResponse:
    """A fully read, size-capped HTTP response."""

    def __init__(self, status: int, url: str, headers: httpx.Headers, content: bytes, encoding: str | None):
        self.status_code, self.url, self.headers, self.content = status, url, headers, content
        self.text = content.decode(encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


def http_request(config: dict, skill: str, method: str, url: str, *, params: dict | None = None,
                 json_body: Any = None, data: dict | None = None, headers: dict | None = None,
                 timeout_s: float | None = None, max_bytes: int = MAX_BYTES) -> WebResponse:
    """One request with the fleet's rules; raises SkillError naming the URL and the fix."""
    require_network(config, skill, url)
    if not re.match(r"^https?://", url or "", re.IGNORECASE):
        raise SkillError(f"{skill}: {url!r} is not an http(s) URL")
    settings = search_settings(config)
    timeout = float(timeout_s or settings["timeout_s"])
    hdrs = {"User-Agent": settings["user_agent"]}
    hdrs.update(headers or {})
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=True,
                          max_redirects=5) as client:
            # The timeout bounds each read; the whole request gets three times
            # it, so a server that trickles a byte at a time cannot hold the
            # skill until its hard timeout ends the worker.
            deadline = time.monotonic() + 3 * timeout
            with client.stream(method, url, params=params, json=json_body, data=data, headers=hdrs) as resp:
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the whole response took too long")
                    size += len(chunk)
                    if size > max_bytes:
                        raise SkillError(f"{skill}: the response from {url} is larger than {max_bytes} bytes; refused")
                    chunks.append(chunk)
                out = WebResponse(resp.status_code, str(resp.url), resp.headers, b"".join(chunks), resp.encoding)
    except httpx.TimeoutException:
        raise SkillError(f"{skill}: {url} did not answer within {timeout:.0f} s (or took over "
                         f"{3 * timeout:.0f} s to send it all); try again later or raise [search] timeout_s",
                         retryable=True) from None
    except httpx.HTTPError as exc:
        raise SkillError(f"{skill}: cannot reach {url} ({type(exc).__name__}: {exc}); check the address "
                         "and the network", retryable=True) from None
    if out.status_code == 429:
        raise SkillError(f"{skill}: {url} is rate-limiting us (HTTP 429); try again later", retryable=True)
    if out.status_code in (401, 403):
        raise SkillError(f"{skill}: {url} refused the request (HTTP {out.status_code}); check the API key "
                         "(lead_client.py secret set ...) or the instance's settings")
    if out.status_code >= 400:
        raise SkillError(f"{skill}: {url} answered HTTP {out.status_code}: {out.text[:200]!r}",
                         retryable=out.status_code >= 500)
    return out


class _TextExtractor(html.parser.HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article",
             "pre", "blockquote", "ul", "ol", "table", "header", "footer"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if tag == "title":
            self._in_title = True
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if not self.skip:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str]:
    """(title, text) of an HTML page: visible text, one paragraph per block."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text)
    lines = [ln.strip() for ln in text.splitlines()]
    return parser.title.strip(), "\n".join(lines).strip()


def fetch_text(config: dict, skill: str, url: str, *, max_chars: int) -> dict:
    """A URL's readable text: HTML converted, plain text kept, anything else refused."""
    resp = http_request(config, skill, "GET", url)
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml") or (not ctype and resp.text.lstrip().startswith("<")):
        title, text = html_to_text(resp.text)
    elif ctype.startswith("text/") or ctype in ("application/json", "application/xml", ""):
        title, text = "", resp.text
    else:
        raise SkillError(f"{skill}: {url} is {ctype}, not text or HTML; download it and give the file instead")
    if not text.strip():
        raise SkillError(f"{skill}: {url} has no readable text")
    return {"url": resp.url, "title": title, "text": text[:max_chars], "truncated": len(text) > max_chars}
