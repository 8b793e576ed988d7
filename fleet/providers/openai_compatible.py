"""Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, hosted
services): `POST /v1/chat/completions` over httpx, one JSON reply or an SSE
stream. Several may be configured under different [providers.NAME] tables.
"""

from __future__ import annotations

import json

from .base import (
    ChatRequest,
    Completion,
    Provider,
    ProviderError,
    http_client,
    http_error,
    reply_object,
    transport_error,
)


class OpenAICompatibleProvider(Provider):
    type_name = "openai_compatible"
    default_base_url = "http://localhost:8000"
    cloud_by_default = None  # by host: loopback/private is local

    def how_to_fix(self) -> str:
        key = self.settings["api_key_env"]
        extra = f", and set {key} (lead_client.py secret set {key} -)" if key else ""
        return f"start the OpenAI-compatible server at {self.base_url}{extra}"

    def missing_configuration(self) -> str | None:
        try:
            self._headers()
        except ProviderError as exc:
            return str(exc)
        return None

    def _url(self) -> str:
        base = self.base_url
        return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"

    def _headers(self) -> dict:
        key_name = self.settings["api_key_env"]
        if not key_name:
            return {}
        from fleet.secret_file import get_secret

        key = get_secret(self.cfg, key_name)
        if not key:
            raise ProviderError("unconfigured", f"{self.name}: no API key; set {key_name} "
                                                f"(lead_client.py secret set {key_name} -)")
        return {"Authorization": f"Bearer {key}"}

    def complete(self, request: ChatRequest) -> Completion:
        import httpx

        headers = self._headers()
        messages = list(request.messages)
        if request.system:
            messages = [{"role": "system", "content": request.system}] + messages
        stream = bool(self.settings["stream"])
        body: dict = {"model": request.model, "messages": messages, "max_tokens": int(request.max_tokens),
                      "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "result", "schema": request.json_schema}}
        client = http_client(self.timeout_s)
        try:
            if not stream:
                response = client.post(self._url(), json=body, headers=headers)
                if response.status_code >= 400:
                    raise http_error(self, response)
                data = reply_object(self, response.json())
                choice = (data.get("choices") or [{}])[0]
                text = (choice.get("message") or {}).get("content") or ""
                return self._completion(request, data.get("model"), text, data.get("usage") or {},
                                        choice.get("finish_reason"))
            with client.stream("POST", self._url(), json=body, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise http_error(self, response)
                parts, usage, model, finish, done = [], {}, None, None, False
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data_text = line[5:].strip()
                    if data_text == "[DONE]":
                        done = True
                        break
                    event = reply_object(self, json.loads(data_text), "stream event")
                    model = event.get("model") or model
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        parts.append((choice.get("delta") or {}).get("content") or "")
                        finish = choice.get("finish_reason") or finish
                if not done and finish is None:  # cut off: partial text is not an answer
                    raise ProviderError("transport", f"{self.name}: the stream ended before its last event "
                                                     "(no [DONE] and no finish_reason)")
                return self._completion(request, model, "".join(parts), usage, finish)
        except httpx.TransportError as exc:
            raise transport_error(self, exc) from None
        except ValueError as exc:
            raise ProviderError("server", f"{self.name}: unreadable reply: {exc}") from None

    @staticmethod
    def _completion(request, model, text, usage: dict, finish) -> Completion:
        prompt = int(usage.get("prompt_tokens") or 0)
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        return Completion(text=text, model=model or request.model, input_tokens=max(0, prompt - cached),
                          output_tokens=int(usage.get("completion_tokens") or 0),
                          cache_read_tokens=cached, stop_reason=finish)


PROVIDER = OpenAICompatibleProvider
