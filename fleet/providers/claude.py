"""Anthropic's Messages API through the official `anthropic` SDK (base_url
configurable), with prompt caching on the system prompt and cache tokens read
from the response usage. The SDK's own retries are off: the router retries.
"""

from __future__ import annotations

import hashlib
import json
import threading

from .base import (
    ChatRequest,
    Completion,
    Provider,
    ProviderError,
    status_error,
    transport_error,
)

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


class ClaudeProvider(Provider):
    type_name = "claude"
    default_base_url = "https://api.anthropic.com"
    cloud_by_default = True

    @property
    def key_name(self) -> str:
        return self.settings["api_key_env"] or "ANTHROPIC_API_KEY"  # a [providers.X] of type claude names none

    def how_to_fix(self) -> str:
        return f"set {self.key_name} (lead_client.py secret set {self.key_name} -)"

    def missing_configuration(self) -> str | None:
        from fleet.secret_file import get_secret

        if get_secret(self.cfg, self.key_name):
            return None
        return f"{self.name}: no API key; {self.how_to_fix()}"

    def _client(self):
        from fleet.secret_file import get_secret

        key = get_secret(self.cfg, self.key_name)
        if not key:
            raise ProviderError("unconfigured", f"{self.name}: no API key; {self.how_to_fix()}")
        import anthropic

        # The key is part of the cache key only as a digest, never kept in plain text elsewhere.
        ident = (self.base_url, hashlib.sha256(key.encode()).hexdigest(), self.timeout_s)
        with _clients_lock:
            client = _clients.get(ident)
            if client is None:
                client = anthropic.Anthropic(api_key=key, base_url=self.base_url, max_retries=0,
                                             timeout=self.timeout_s)
                _clients[ident] = client
        return client

    @classmethod
    def preload(cls) -> None:
        import anthropic  # noqa: F401 - 1.3 s warm, 15 s on a cold disk: paid when the worker starts

    def complete(self, request: ChatRequest) -> Completion:
        import anthropic

        client = self._client()
        system_text = request.system or ""
        if request.json_schema is not None:
            system_text = (system_text + "\n\n" if system_text else "") + (
                "Reply with only a JSON value (no prose, no code fences) that matches this JSON Schema:\n"
                + json.dumps(request.json_schema, sort_keys=True))
        kwargs: dict = {"model": request.model, "max_tokens": int(request.max_tokens),
                        "messages": request.messages}
        if system_text:
            block: dict = {"type": "text", "text": system_text}
            if self.settings["cache_system"]:
                block["cache_control"] = {"type": "ephemeral"}
            kwargs["system"] = [block]
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        try:
            message = client.messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            try:
                body = exc.response.json()
            except ValueError:
                body = exc.response.text
            raise status_error(self, exc.status_code, body, exc.response.headers.get("retry-after"),
                               str(exc)) from None
        except anthropic.APIConnectionError as exc:  # APITimeoutError included
            raise transport_error(self, exc) from None
        text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text")
        usage = message.usage
        return Completion(
            text=text,
            model=message.model or request.model,
            input_tokens=int(usage.input_tokens or 0),
            output_tokens=int(usage.output_tokens or 0),
            cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
            cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
            stop_reason=message.stop_reason,
        )


PROVIDER = ClaudeProvider
