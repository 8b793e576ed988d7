"""The store's value conventions, shared by every backend: one clock (UTC
epoch seconds) and one JSON encoding for payloads, results and details, with
the size and validity checks that turn a bad value into InvalidInput.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .errors import InvalidInput


def now() -> float:
    """The store's one time representation: UTC epoch seconds."""
    return time.time()


def dumps(value: Any, what: str, limit: int | None = None) -> str:
    """Serialise to JSON or raise InvalidInput naming `what`."""
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{what} contains text that is not valid Unicode (a lone surrogate); "
                "decode bytes properly before passing them"
            ) from None
    if limit is not None and size > limit:
        raise InvalidInput(
            f"{what} is {size} bytes, over the limit of {limit} bytes "
            "([queue] max_payload_bytes); store large data in a file and pass its path"
        )
    return text


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
