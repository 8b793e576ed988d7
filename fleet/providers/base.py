"""The provider interface every model backend implements, the request and
completion types, and the classification of failures into the reasons the
router acts on (transport, rate_limit, auth, server, model_missing, bad_request).

A provider type is one module `fleet/providers/<type>.py` exposing `PROVIDER`
(a `Provider` subclass); `provider_class(type)` finds it, so adding a provider
touches one file.
"""

from __future__ import annotations

import atexit
import dataclasses
import email.utils
import importlib
import ipaddress
import pkgutil
import re
import time
from typing import Any
from urllib.parse import urlsplit

# Reasons for which the router moves on to the next provider.
FAILOVER_KINDS = ("transport", "rate_limit", "auth", "server", "model_missing", "context_overflow",
                  "request_failed")
# Reasons that count towards a provider's circuit breaker: the breaker judges
# the server, not one request. A server that cannot be reached, times out,
# answers 502/503/504/529, or a 500 that does not say the request itself was at
# fault is unwell; a request-specific rejection (400/422, a context overflow, a
# grammar/format failure, a 500 saying the request could not be satisfied:
# kinds bad_request, context_overflow, request_failed) says nothing about the
# server and leaves its breaker alone.
BREAKER_KINDS = ("transport", "server", "auth")

# What a server says when the prompt does not fit its context (llama.cpp,
# vLLM, OpenAI, Anthropic, Ollama, LM Studio wordings).
_CONTEXT_RE = re.compile(
    r"context[ _-]?(size|length|window)|exceed_context|n_ctx|maximum context|prompt is too long|"
    r"too many tokens|input is too long|input length exceeds|exceeds the (available|maximum) context|"
    r"context_length_exceeded|reduce the length", re.IGNORECASE)
# What a 500 says when this request could not be satisfied (the server is fine):
# llama.cpp's grammar/JSON-schema and template failures, parse errors of the
# model's own output, unsupported parameters.
_REQUEST_FAULT_RE = re.compile(
    r"grammar|json[ _-]?schema|response[ _]format|failed to parse|parse (error|input)|could not parse|"
    r"unable to parse|cannot be satisfied|could not be satisfied|invalid (request|argument|parameter|value|"
    r"input|json|format)|not supported|unsupported|chat template|tool call", re.IGNORECASE)


@dataclasses.dataclass
class ChatRequest:
    messages: list[dict]          # [{"role": "user"|"assistant", "content": str}]
    model: str
    system: str | None = None
    max_tokens: int = 1024
    temperature: float | None = None
    json_schema: dict | None = None


@dataclasses.dataclass
class Completion:
    text: str
    model: str
    input_tokens: int = 0         # uncached input tokens
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    stop_reason: str | None = None


class ProviderError(Exception):
    """A provider could not serve a request. `kind` is one of FAILOVER_KINDS,
    'bad_request' (the request itself is wrong: no failover) or 'unconfigured'
    (no request was sent, e.g. a missing API key). `cause` details a transport
    failure (see transport_cause).
    `context_tokens`/`prompt_tokens`: a context overflow's figures when the
    server gave them."""

    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None, cause: str | None = None,
                 context_tokens: int | None = None, prompt_tokens: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.cause = cause
        self.context_tokens = context_tokens
        self.prompt_tokens = prompt_tokens


def classify_status(status: int, message: str = "") -> str:
    """The failure kind of an HTTP error status and the server's own message
    (see BREAKER_KINDS for what each kind does to the breaker)."""
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "model_missing"
    if status in (400, 413, 422, 500) and _CONTEXT_RE.search(message or ""):
        return "context_overflow"
    if status == 500 and _REQUEST_FAULT_RE.search(message or ""):
        return "request_failed"
    if status in (408, 425) or status >= 500:
        return "server"
    return "bad_request"


def _context_figures(body: Any, message: str) -> tuple[int | None, int | None]:
    """(context tokens, prompt tokens) of an overflow, from llama.cpp's
    n_ctx/n_prompt_tokens members or the message's numbers."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("n_ctx"), int):
        prompt = err.get("n_prompt_tokens")
        return err["n_ctx"], prompt if isinstance(prompt, int) else None
    m = re.search(r"\((\d+) tokens\) exceeds the available context size \((\d+) tokens\)", message)
    if m:  # llama.cpp's wording
        return int(m.group(2)), int(m.group(1))
    m = re.search(r"maximum context length is (\d+) tokens.*?(\d+) tokens", message)
    if m:  # OpenAI/vLLM's
        return int(m.group(1)), int(m.group(2))
    m = re.search(r"prompt is too long: (\d+) tokens > (\d+)", message)
    if m:  # Anthropic's
        return int(m.group(2)), int(m.group(1))
    return None, None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_message(body: Any, fallback: str) -> str:
    """The human part of a provider's JSON error body (Ollama, Anthropic, OpenAI shapes)."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or fallback)[:500]
        if err:
            return str(err)[:500]
        if body.get("message"):
            return str(body["message"])[:500]
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback


def is_loopback_or_private(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith((".localhost", ".local")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


class Provider:
    """One configured provider (a `[providers.NAME]` table). Subclasses set
    `type_name`, `default_base_url`, `cloud_by_default` and implement `complete`."""

    type_name = "base"
    default_base_url = ""
    cloud_by_default: bool | None = None  # None: decided by the host of base_url

    def __init__(self, name: str, settings: dict, cfg: dict):
        self.name = name
        self.settings = settings
        self.cfg = cfg
        self.base_url = (settings["base_url"] or self.default_base_url).rstrip("/")  # empty: the type's default
        self.timeout_s = float(settings["timeout_s"])

    # -- what the router asks --------------------------------------------
    @property
    def is_cloud(self) -> bool:
        locality = self.settings["locality"]
        if locality in ("local", "cloud"):
            return locality == "cloud"
        if self.cloud_by_default is not None:
            return self.cloud_by_default
        return not is_loopback_or_private(self.base_url)

    def resolve_model(self, requested: str | None) -> str:
        """The model this call will use on this provider."""
        return requested or self.settings["model"]

    def missing_configuration(self) -> str | None:
        """Why no request can be sent at all (e.g. no API key), or None. Checked
        before anything else, so an unconfigured provider costs no connection."""
        return None

    def complete(self, request: ChatRequest) -> Completion:  # pragma: no cover - interface
        raise NotImplementedError

    def how_to_fix(self) -> str:
        """A hint for the operator when this provider cannot be reached."""
        return f"check that {self.name} is reachable at {self.base_url}"

    def close(self) -> None:
        pass

    @classmethod
    def preload(cls) -> None:
        """Import what the first request would otherwise import (an SDK), so a
        worker pays for it when it starts, not inside its first task."""
        import httpx  # noqa: F401 - imported for its side effect: the module is loaded


_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def available_types() -> list[str]:
    import fleet.providers as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.name.startswith("_") and m.name != "base")


def provider_class(type_name: str) -> type[Provider]:
    """The Provider subclass of a type (module `fleet.providers.<type>`)."""
    if not _TYPE_RE.match(type_name or "") or type_name == "base" or type_name not in available_types():
        raise ProviderError(
            "unconfigured",
            f"unknown provider type {type_name!r}; use one of {', '.join(available_types())} "
            "(a module in fleet/providers/)",
        )
    module = importlib.import_module(f"fleet.providers.{type_name}")
    cls = getattr(module, "PROVIDER", None)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderError("unconfigured", f"fleet/providers/{type_name}.py defines no PROVIDER class")
    return cls


# -- shared HTTP plumbing for the httpx-based providers -----------------------
_clients: dict[tuple, Any] = {}


def http_client(timeout_s: float):
    """A process-wide pooled httpx client per timeout (connections are reused)."""
    import os

    import httpx

    key = (os.getpid(), float(timeout_s))
    client = _clients.get(key)
    if client is None:
        client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)))
        _clients[key] = client
    return client


def close_clients() -> None:
    """Close this process's pooled connections (also run at exit)."""
    for client in list(_clients.values()):
        try:
            client.close()
        except Exception:  # noqa: BLE001, S110 - closing at exit must never raise
            pass
    _clients.clear()


atexit.register(close_clients)


def status_error(provider: Provider, status: int, body: Any, retry_after_header: str | None,
                 fallback: str | None = None) -> ProviderError:
    """A ProviderError for an HTTP error reply: its status and the server's own message."""
    message = error_message(body, fallback or f"HTTP {status}")
    err = body.get("error") if isinstance(body, dict) else None
    kind_text = " ".join(str(err.get(k) or "") for k in ("type", "code")) if isinstance(err, dict) else ""
    kind = classify_status(status, f"{message} {kind_text}")
    ctx, prompt = _context_figures(body, message) if kind == "context_overflow" else (None, None)
    return ProviderError(kind, f"{provider.name}: HTTP {status}: {message}", status=status,
                         retry_after=parse_retry_after(retry_after_header), context_tokens=ctx, prompt_tokens=prompt)


def http_error(provider: Provider, response) -> ProviderError:
    """A ProviderError from a non-2xx httpx response (reads the body)."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return status_error(provider, response.status_code, body, response.headers.get("retry-after"))


def reply_object(provider: Provider, data: Any, what: str = "reply") -> dict:
    """A decoded 200 reply (or stream event) as the dict it must be. Some
    servers and proxies answer an error with status 200 and an `error`
    member (OpenRouter, LiteLLM, Ollama when its runner died): that is a
    server failure, to fail over from, not an empty answer."""
    if not isinstance(data, dict):
        raise ProviderError("server", f"{provider.name}: the {what} is JSON but not an object "
                                      f"({type(data).__name__}); the server is not speaking its API")
    if data.get("error"):
        raise ProviderError("server", f"{provider.name}: the {what} carries an error: "
                                      f"{error_message(data, 'unspecified')}")
    return data


def transport_cause(exc: BaseException) -> str:
    """'refused' (nothing listens), 'connect_timeout', 'timeout' (no reply in
    time), 'dns', 'reset' or 'other' for a
    transport exception (httpx's or the anthropic SDK's, by their chain)."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen and len(seen) < 8:
        seen.append(e)
        e = e.__cause__ or e.__context__
    names = " ".join(type(x).__name__ for x in seen).lower()
    text = " ".join(str(x) for x in seen).lower()
    if "connecttimeout" in names:
        return "connect_timeout"
    if "timeout" in names or "timed out" in text:
        return "timeout"
    if any(isinstance(x, ConnectionRefusedError) for x in seen) or "connection refused" in text \
            or "errno 111" in text:
        return "refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text \
            or "temporary failure in name resolution" in text:
        return "dns"
    if any(isinstance(x, (ConnectionResetError, BrokenPipeError)) for x in seen) or "reset" in text \
            or "disconnected" in text or "closed" in names or "incomplete" in text:
        return "reset"
    return "other"


_CAUSE_TEXT = {
    "refused": "cannot reach {url}: nothing listens there",
    "connect_timeout": "cannot reach {url}: the connection timed out",
    "timeout": "{url} took the request but sent no reply within {timeout:g} s (timeout_s)",
    "dns": "cannot reach {url}: its host name does not resolve",
    "reset": "{url} closed the connection before its reply was complete",
    "other": "cannot reach {url}",
}


def transport_error(provider: Provider, exc: Exception) -> ProviderError:
    what = type(exc).__name__
    cause = transport_cause(exc)
    said = _CAUSE_TEXT[cause].format(url=provider.base_url, timeout=provider.timeout_s)
    return ProviderError("transport", f"{provider.name}: {said} ({what}: {exc})", cause=cause)
