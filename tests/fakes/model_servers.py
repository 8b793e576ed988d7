"""Loopback fakes of model servers for tests: Ollama, the Anthropic Messages API
and an OpenAI-compatible server, each speaking the real wire protocol on
127.0.0.1 so the real client code (httpx, the anthropic SDK) runs against them.

Every fake is scriptable per test: a queue of replies (text, status codes,
Retry-After, delays), a default reply when the queue is empty, a log of the
requests received and a count of accepted TCP connections.

    with FakeOllama(models=["qwen3:8b"]) as ollama:
        ollama.fail(503, "overloaded")          # first request gets a 503
        ollama.reply("hello", usage={"input": 12, "output": 3})
        ...
        assert ollama.request_count == 2
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import http.server
import itertools
import json
import socket
import socketserver
import threading
import time
from typing import Any, ClassVar

__all__ = [
    "ConnectionCounter",
    "FakeAnthropic",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "Recorded",
    "Reply",
    "dead_url",
    "free_port",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


def _words(text: str) -> int:
    return max(1, len(str(text).split()))


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass
class Reply:
    """One scripted reply. `status` 200 with `text` is a normal completion; any
    other status is an error in the provider's own error format. `usage` keys:
    input, output, cache_read, cache_write (token counts; defaults derived from
    word counts). `body` (a dict) replaces the generated JSON body entirely;
    `raw` (bytes) replaces the whole body, e.g. to send malformed JSON."""

    text: str = "ok"
    status: int = 200
    message: str = ""
    retry_after: float | str | None = None
    delay_s: float = 0.0
    usage: dict | None = None
    headers: dict | None = None
    body: dict | None = None
    raw: bytes | None = None
    drop: bool = False  # close the connection without any response
    finish_reason: str | None = None  # "length": cut off at max_tokens (each fake uses its protocol's word)


@dataclasses.dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict
    body: Any
    time: float


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, owner):
        self.owner = owner
        super().__init__(addr, handler)

    def verify_request(self, request, client_address) -> bool:
        with self.owner._lock:
            self.owner.connections += 1
        return True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # like real servers (Go sets TCP_NODELAY); avoids 40 ms delayed-ACK stalls
    server: _ThreadingServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = data.decode("utf-8", "replace")
        owner = self.server.owner
        rec = Recorded(method, self.path.split("?")[0], {k.lower(): v for k, v in self.headers.items()},
                       body, time.time())
        with owner._lock:
            owner.requests.append(rec)
        owner._arrived.set()
        try:
            owner._dispatch(self, rec)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- response helpers used by the fakes ------------------------------
    def send_json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_stream(self, content_type: str, chunks) -> None:
        """A chunked (Transfer-Encoding) response, one chunk per item."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeServer:
    """Base of the fakes: a threaded HTTP server on 127.0.0.1 with a reply queue."""

    name = "fake"

    def __init__(self, *, port: int = 0, default: Reply | None = None):
        self.requests: list[Recorded] = []
        self.connections = 0
        self.default = default or Reply()
        self._queue: collections.deque[Reply] = collections.deque()
        self._rules: list[tuple[str, Reply]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server = _ThreadingServer(("127.0.0.1", port), _Handler, self)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> FakeServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.05}, daemon=True,
                                            name=f"{self.name}-{self.port}")
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reply(self, text: str = "ok", **kw) -> None:
        """Queue a successful completion."""
        self.enqueue(Reply(text=text, **kw))

    def fail(self, status: int, message: str = "", *, retry_after=None, times: int = 1, **kw) -> None:
        """Queue `times` error replies with this status (and Retry-After)."""
        for _ in range(times):
            self.enqueue(Reply(status=status, message=message or f"fake error {status}",
                               retry_after=retry_after, **kw))

    def reply_when(self, phrase: str, text: str, **kw) -> None:
        """Scripted by prompt: every request whose prompt (system and
        messages) holds `phrase` gets this reply, before the queue; the
        earliest matching rule wins, and rules are never used up."""
        with self._lock:
            self._rules.append((phrase, Reply(text=text, **kw)))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._queue.clear()
            self.requests.clear()
            self.connections = 0

    def respond(self, script) -> None:
        """Script replies by prompt: `script(body)` (the request's JSON body)
        returns the reply's text, a Reply, or None for the default. Rules
        (reply_when) and queued replies still come first."""
        self.script = script

    def _next_reply(self, rec: Recorded | None = None) -> Reply:
        body = rec.body if rec is not None else None
        prompt = _prompt_text(body) if rec is not None and self._rules else ""
        with self._lock:
            for phrase, reply in self._rules:
                if phrase in prompt:
                    return reply
            if self._queue:
                return self._queue.popleft()
            script = getattr(self, "script", None)
        if script is not None and isinstance(body, dict):
            answer = script(body)
            if isinstance(answer, str):
                return Reply(text=answer)
            if isinstance(answer, Reply):
                return answer
        return self.default

    # -- inspection ------------------------------------------------------
    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for_requests(self, n: int, timeout: float = 10.0, path: str | None = None) -> bool:
        """Poll until at least `n` requests (to `path`, if given) arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = len(self.requests_to(path)) if path else self.request_count
            if got >= n:
                return True
            time.sleep(0.01)
        return False

    # -- dispatch --------------------------------------------------------
    def _pause(self, reply: Reply) -> None:
        if reply.delay_s:
            self._stopping.wait(reply.delay_s)

    def _scripted(self, h: _Handler, reply: Reply) -> bool:
        """Apply delay/drop/raw/error parts of a reply; True when it was sent."""
        self._pause(reply)
        if reply.drop:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if reply.raw is not None:
            h.send_json(reply.status, reply.raw, reply.headers)
            return True
        if reply.status != 200:
            headers = dict(reply.headers or {})
            if reply.retry_after is not None:
                headers["Retry-After"] = reply.retry_after
            h.send_json(reply.status, reply.body or self.error_body(reply), headers)
            return True
        if reply.body is not None:
            h.send_json(200, reply.body, reply.headers)
            return True
        return False

    def error_body(self, reply: Reply) -> dict:
        return {"error": reply.message}

    def _dispatch(self, h: _Handler, rec: Recorded) -> None:
        h.send_json(404, {"error": f"no route {rec.method} {rec.path}"})

    @staticmethod
    def _prompt_words(messages) -> int:
        total = 0
        for m in messages or []:
            content = m.get("content") if isinstance(m, dict) else m
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            total += _words(content or "")
        return max(1, total)


class FakeOllama(FakeServer):
    """Ollama's HTTP API: /api/chat (JSON or NDJSON stream), /api/generate
    (incl. load/unload by keep_alive), /api/tags, /api/ps, /api/version.
    `models=None` accepts any model name; otherwise others get a 404."""

    name = "fake-ollama"

    def __init__(self, *, models: list[str] | None = None, **kw):
        super().__init__(**kw)
        self.models = list(models) if models is not None else None
        self.loaded: dict[str, float] = {}  # model -> expires_at (epoch s); 0 = never
        self.model_size = 5_000_000_000
        self.size_vram = 4_500_000_000

    def error_body(self, reply: Reply) -> dict:
        return {"error": reply.message}

    def _known(self, model: str) -> bool:
        return self.models is None or model in self.models

    def _touch(self, model: str, keep_alive) -> None:
        seconds = _duration_s(keep_alive, default=300.0)
        with self._lock:
            if seconds == 0:
                self.loaded.pop(model, None)
            else:
                self.loaded[model] = 0.0 if seconds < 0 else time.time() + seconds

    def _dispatch(self, h: _Handler, rec: Recorded) -> None:
        path, body = rec.path, rec.body if isinstance(rec.body, dict) else {}
        if rec.method == "GET" and path == "/":
            data = b"Ollama is running"
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        if path == "/api/version":
            return h.send_json(200, {"version": "0.12.0"})
        if path == "/api/tags":
            names = self.models if self.models is not None else sorted(self.loaded)
            return h.send_json(200, {"models": [self._model_entry(n) for n in names]})
        if path == "/api/ps":
            with self._lock:
                self.loaded = {m: e for m, e in self.loaded.items() if e == 0 or e > time.time()}
                items = list(self.loaded.items())
            return h.send_json(200, {"models": [
                dict(self._model_entry(m), expires_at=_iso(e), size_vram=self.size_vram) for m, e in items]})
        if path not in ("/api/chat", "/api/generate") or rec.method != "POST":
            return h.send_json(404, {"error": "404 page not found"})
        model = body.get("model", "")
        if not model:
            return h.send_json(400, {"error": "model is required"})
        reply = self._next_reply(rec)
        if self._scripted(h, reply):
            return
        if not self._known(model):
            return h.send_json(404, {"error": f"model '{model}' not found, try pulling it first"})
        self._touch(model, body.get("keep_alive"))
        if path == "/api/generate" and not body.get("prompt"):
            unload = _duration_s(body.get("keep_alive"), default=300.0) == 0
            return h.send_json(200, {"model": model, "created_at": _now_iso(), "response": "",
                                     "done": True, "done_reason": "unload" if unload else "load"})
        usage = reply.usage or {}
        if path == "/api/chat":
            n_in = usage.get("input", self._prompt_words(body.get("messages")))
        else:
            n_in = usage.get("input", _words(body.get("prompt", "")))
        n_out = usage.get("output", _words(reply.text))
        final = {"model": model, "created_at": _now_iso(), "done": True,
                 "done_reason": reply.finish_reason or "stop",
                 "total_duration": 1_000_000, "load_duration": 100_000, "prompt_eval_count": n_in,
                 "prompt_eval_duration": 200_000, "eval_count": n_out, "eval_duration": 700_000}
        stream = body.get("stream", True)
        if path == "/api/chat":
            if not stream:
                return h.send_json(200, dict(final, message={"role": "assistant", "content": reply.text}))
            pieces = _split_text(reply.text)
            lines = [json.dumps({"model": model, "created_at": _now_iso(),
                                 "message": {"role": "assistant", "content": p}, "done": False}) + "\n"
                     for p in pieces]
            lines.append(json.dumps(dict(final, message={"role": "assistant", "content": ""})) + "\n")
            return h.send_stream("application/x-ndjson", lines)
        if not stream:
            return h.send_json(200, dict(final, response=reply.text))
        lines = [json.dumps({"model": model, "created_at": _now_iso(), "response": p, "done": False}) + "\n"
                 for p in _split_text(reply.text)]
        lines.append(json.dumps(dict(final, response="")) + "\n")
        return h.send_stream("application/x-ndjson", lines)

    def _model_entry(self, name: str) -> dict:
        return {"name": name, "model": name, "modified_at": _now_iso(), "size": self.model_size,
                "digest": "0" * 64,
                "details": {"format": "gguf", "family": name.split(":")[0], "parameter_size": "8B",
                            "quantization_level": "Q4_K_M"}}


class FakeAnthropic(FakeServer):
    """The Anthropic Messages API (`POST /v1/messages`), usable through the
    real `anthropic` SDK with `base_url=fake.url`. With `api_key` set, other
    keys (sent as x-api-key or a Bearer token; SDK versions differ) get a 401
    authentication_error. `models=None` accepts any model."""

    name = "fake-anthropic"
    _ERROR_TYPES: ClassVar[dict[int, str]] = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    500: "api_error", 529: "overloaded_error"}

    def __init__(self, *, api_key: str | None = None, models: list[str] | None = None, **kw):
        super().__init__(**kw)
        self.api_key = api_key
        self.models = list(models) if models is not None else None

    def error_body(self, reply: Reply) -> dict:
        kind = self._ERROR_TYPES.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": reply.message}}

    def _dispatch(self, h: _Handler, rec: Recorded) -> None:
        if rec.path == "/v1/models" and rec.method == "GET":
            names = self.models or ["claude-sonnet-4-6", "claude-haiku-4-5"]
            return h.send_json(200, {"data": [{"type": "model", "id": n, "display_name": n,
                                               "created_at": _now_iso()} for n in names],
                                     "has_more": False, "first_id": names[0], "last_id": names[-1]})
        if rec.path != "/v1/messages" or rec.method != "POST":
            return h.send_json(404, {"type": "error", "error": {"type": "not_found_error",
                                                                "message": f"no route {rec.path}"}})
        sent = rec.headers.get("x-api-key") or rec.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and sent != self.api_key:
            return h.send_json(401, {"type": "error", "error": {"type": "authentication_error",
                                                                "message": "invalid x-api-key"}})
        body = rec.body if isinstance(rec.body, dict) else {}
        reply = self._next_reply(rec)
        if self._scripted(h, reply):
            return
        model = body.get("model", "")
        if self.models is not None and model not in self.models:
            return h.send_json(404, {"type": "error", "error": {"type": "not_found_error",
                                                                "message": f"model: {model}"}})
        if not body.get("messages") or not body.get("max_tokens"):
            return h.send_json(400, {"type": "error", "error": {
                "type": "invalid_request_error", "message": "messages and max_tokens are required"}})
        usage = reply.usage or {}
        system = body.get("system")
        sys_words = 0
        if isinstance(system, list):
            sys_words = sum(_words(b.get("text", "")) for b in system if isinstance(b, dict))
        elif system:
            sys_words = _words(system)
        payload = {
            "id": f"msg_fake{next(self._ids):06d}", "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": reply.text}],
            "stop_reason": {"length": "max_tokens"}.get(reply.finish_reason or "", reply.finish_reason or "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": usage.get("input", self._prompt_words(body.get("messages")) + sys_words),
                      "output_tokens": usage.get("output", _words(reply.text)),
                      "cache_creation_input_tokens": usage.get("cache_write", 0),
                      "cache_read_input_tokens": usage.get("cache_read", 0)},
        }
        h.send_json(200, payload, {"request-id": f"req_fake{next(self._ids)}"})


class FakeOpenAI(FakeServer):
    """An OpenAI-compatible server: `POST /v1/chat/completions` (JSON or SSE
    stream) and `GET /v1/models`. With `api_key` set, other bearer tokens get 401.
    With `n_ctx`, a prompt of more words than that gets llama.cpp's HTTP 400
    exceed_context_size_error (a word counts as a token). Any other path
    (GET / included) is a 404, as on llama-server with its web UI off."""

    name = "fake-openai"

    def __init__(self, *, api_key: str | None = None, models: list[str] | None = None, n_ctx: int | None = None,
                 **kw):
        super().__init__(**kw)
        self.api_key = api_key
        self.models = list(models) if models is not None else None
        self.n_ctx = n_ctx

    def error_body(self, reply: Reply) -> dict:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key", 404: "model_not_found"}.get(
            reply.status, "server_error" if reply.status >= 500 else "invalid_request_error")
        return {"error": {"message": reply.message, "type": kind, "param": None, "code": kind}}

    def _dispatch(self, h: _Handler, rec: Recorded) -> None:
        if self.api_key is not None and rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return h.send_json(401, {"error": {"message": "Incorrect API key provided",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
        if rec.path == "/v1/models":
            names = self.models or ["fake-model"]
            return h.send_json(200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]})
        if rec.path != "/v1/chat/completions" or rec.method != "POST":
            return h.send_json(404, {"error": {"message": f"no route {rec.path}", "type": "not_found"}})
        body = rec.body if isinstance(rec.body, dict) else {}
        n_prompt = self._prompt_words(body.get("messages"))
        if self.n_ctx is not None and n_prompt > self.n_ctx:
            return h.send_json(400, {"error": {
                "code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt, "n_ctx": self.n_ctx,
                "message": f"request ({n_prompt} tokens) exceeds the available context size ({self.n_ctx} tokens)"}})
        reply = self._next_reply(rec)
        if self._scripted(h, reply):
            return
        model = body.get("model", "")
        if self.models is not None and model not in self.models:
            return h.send_json(404, {"error": {"message": f"The model `{model}` does not exist",
                                               "type": "invalid_request_error", "code": "model_not_found"}})
        usage = reply.usage or {}
        n_in = usage.get("input", self._prompt_words(body.get("messages")))
        n_out = usage.get("output", _words(reply.text))
        usage_body = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out,
                      "prompt_tokens_details": {"cached_tokens": usage.get("cache_read", 0)}}
        cid, created = f"chatcmpl-fake{next(self._ids)}", int(time.time())
        if not body.get("stream"):
            return h.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": reply.finish_reason or "stop"}],
                "usage": usage_body})
        events = []
        for piece in _split_text(reply.text):
            events.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        events.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason or "stop"}],
                       "usage": usage_body})
        h.send_stream("text/event-stream", [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"])


class ConnectionCounter:
    """A bare listening socket that counts accepted TCP connections and
    closes them at once: proof at the socket level that nothing connected."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"counter-{self.port}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def start(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _prompt_text(body) -> str:
    """All the prompt text of a chat request (any of the three protocols)."""
    if not isinstance(body, dict):
        return str(body or "")
    parts = [body.get("system"), body.get("prompt")]
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else m
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
        parts.append(content)
    return "\n".join(p if isinstance(p, str) else json.dumps(p) for p in parts if p)


def _split_text(text: str) -> list[str]:
    """Split into stream pieces (about three words each), keeping all characters."""
    parts, current, words = [], "", 0
    for ch in text:
        current += ch
        if ch == " ":
            words += 1
            if words == 3:
                parts.append(current)
                current, words = "", 0
    if current or not parts:
        parts.append(current)
    return parts


def _duration_s(value, default: float) -> float:
    """Ollama keep_alive: a number of seconds, or '5m'/'1h'/'30s'; negative = forever."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                return default
    try:
        return float(text)
    except ValueError:
        return default


def _iso(epoch: float) -> str:
    if not epoch:
        return "2318-08-01T00:00:00Z"  # what Ollama reports for "never expires"
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat().replace("+00:00", "Z")


def provider_toml(name: str, type_: str, url: str, **settings) -> str:
    """A `[providers.NAME]` table for a fleet.toml written by a test."""
    lines = [f"[providers.{name}]", f'type = "{type_}"', f'base_url = "{url}"']
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_model_config(home, *, chain: list[str], providers: list[str], models: str = "", extra: str = "",
                       max_wait_s: float = 0.0) -> None:
    """Write `<home>/fleet.toml` with a model chain, provider tables (from
    `provider_toml`), more `[models]` keys (TOML lines) and any extra TOML."""
    import pathlib

    text = (f"[models]\nchain = {json.dumps(chain)}\nmax_wait_s = {max_wait_s}\n{models}\n\n"
            + "\n".join(providers) + "\n" + extra)
    pathlib.Path(home, "fleet.toml").write_text(text, encoding="utf-8")
