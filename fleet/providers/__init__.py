"""Model providers behind one interface (`base.Provider`): one module per type
(ollama, claude, openai_compatible). The router in `fleet.skills._models`
builds them from `[providers.NAME]` tables; skills never use them directly.
"""

from .base import (
                   BREAKER_KINDS,
                   FAILOVER_KINDS,
                   ChatRequest,
                   Completion,
                   Provider,
                   ProviderError,
                   available_types,
                   provider_class,
)

__all__ = [
                   "BREAKER_KINDS",
                   "FAILOVER_KINDS",
                   "ChatRequest",
                   "Completion",
                   "Provider",
                   "ProviderError",
                   "available_types",
                   "provider_class",
]
