"""The local Ollama server: `POST /api/chat` over httpx (one JSON reply or an
NDJSON stream), with keep_alive and options (num_ctx, num_gpu, num_predict).
The model is the configured one, else the hardware tier's model from a fresh
hw_state.json, else `[models] local_model`.
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


def _tier(cfg: dict) -> dict | None:
    """The hardware tier when hw_state.json is fresh (None when stale or unavailable)."""
    from fleet.hw_state import read_hw_state

    try:
        state = read_hw_state(cfg)
    except Exception:  # noqa: BLE001 - a broken state file must not stop model calls
        return None
    if state.get("stale") or not isinstance(state.get("tier"), dict):
        return None
    return state["tier"]


class OllamaProvider(Provider):
    type_name = "ollama"
    default_base_url = "http://localhost:11434"
    cloud_by_default = None  # by host: a remote or hosted Ollama counts as cloud (offline mode refuses it)

    def resolve_model(self, requested: str | None) -> str:
        if requested:
            return requested
        if self.settings["model"]:
            return self.settings["model"]
        tier = _tier(self.cfg)
        if tier and tier.get("model"):
            return str(tier["model"])
        return self.cfg["models"]["local_model"]

    def how_to_fix(self) -> str:
        return f"start Ollama at {self.base_url} (`ollama serve`)"

    def _options(self, request: ChatRequest) -> dict:
        options: dict = {}
        if self.settings["num_ctx"]:
            options["num_ctx"] = int(self.settings["num_ctx"])
        num_gpu = self.settings["num_gpu"]
        if num_gpu < 0:
            # The tier's GPU layers apply only to the tier's own model: if the
            # tier changed since the model was resolved, send no num_gpu at all.
            tier = _tier(self.cfg)
            num_gpu = tier.get("num_gpu") if tier and tier.get("model") == request.model else None
        if isinstance(num_gpu, int) and num_gpu >= 0:
            options["num_gpu"] = num_gpu
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens:
            options["num_predict"] = int(request.max_tokens)
        return options

    def complete(self, request: ChatRequest) -> Completion:
        import httpx

        messages = list(request.messages)
        if request.system:
            messages = [{"role": "system", "content": request.system}] + messages
        stream = bool(self.settings["stream"])
        body: dict = {"model": request.model, "messages": messages, "stream": stream,
                      "options": self._options(request)}
        if self.settings["keep_alive"]:
            body["keep_alive"] = self.settings["keep_alive"]
        if request.json_schema is not None:
            body["format"] = request.json_schema
        url = f"{self.base_url}/api/chat"
        client = http_client(self.timeout_s)
        try:
            if not stream:
                response = client.post(url, json=body)
                if response.status_code >= 400:
                    raise http_error(self, response)
                data = reply_object(self, response.json())
                return self._completion(request, data, (data.get("message") or {}).get("content") or "")
            with client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise http_error(self, response)
                parts: list[str] = []
                final: dict = {}
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    chunk = reply_object(self, json.loads(line), "stream chunk")
                    parts.append((chunk.get("message") or {}).get("content") or "")
                    if chunk.get("done"):
                        final = chunk
                        break
                if not final:
                    raise ProviderError("transport", f"{self.name}: stream ended before the final chunk")
                return self._completion(request, final, "".join(parts))
        except httpx.TransportError as exc:
            raise transport_error(self, exc) from None
        except ValueError as exc:  # JSON decode
            raise ProviderError("server", f"{self.name}: unreadable reply from {url}: {exc}") from None

    def _completion(self, request: ChatRequest, final: dict, text: str) -> Completion:
        return Completion(
            text=text,
            model=final.get("model") or request.model,
            input_tokens=int(final.get("prompt_eval_count") or 0),
            output_tokens=int(final.get("eval_count") or 0),
            stop_reason=final.get("done_reason"),
        )


PROVIDER = OllamaProvider
