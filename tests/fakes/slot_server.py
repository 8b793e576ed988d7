"""A loopback Ollama fake with a model server's capacity limits: `slots`
requests generate at once (OLLAMA_NUM_PARALLEL), each at `tokens_per_s`, and
only one model fits: a request for another model waits until the running
ones finish, then pays `swap_s` to load it. Requests are admitted in arrival
order, as Ollama's scheduler does. It records every generation span and swap,
so a benchmark can say how busy the slots were.
"""

from __future__ import annotations

import collections
import threading
import time

from .model_servers import FakeOllama, Reply


class SlotOllama(FakeOllama):
    """FakeOllama whose /api/chat honours slots, speed and model swaps."""

    name = "slot-ollama"

    def __init__(self, *, slots: int, tokens_per_s: float, tokens: int, swap_s: float,
                 loaded: str | None = None, **kw):
        if slots < 1 or tokens_per_s <= 0 or tokens < 1 or swap_s < 0:
            raise ValueError("slots >= 1, tokens_per_s > 0, tokens >= 1 and swap_s >= 0 are needed")
        super().__init__(default=Reply(text="x " * tokens, usage={"input": 10, "output": tokens}), **kw)
        self.slots, self.tokens_per_s, self.tokens, self.swap_s = slots, tokens_per_s, tokens, swap_s
        self.current = loaded
        self.loaded = {loaded: 0.0} if loaded else {}
        self._cv = threading.Condition()
        self._waiting: collections.deque = collections.deque()
        self._active = 0
        self.swaps = 0
        self.swap_log: list[tuple[float, str | None, str]] = []  # (when, from, to)
        self.arrivals: list[float] = []
        self.spans: list[tuple[float, float]] = []  # (start, end) of each generation, epoch s

    def reset(self, loaded: str | None) -> None:
        with self._cv:
            self.current, self.loaded = loaded, ({loaded: 0.0} if loaded else {})
            self.swaps, self.swap_log, self.arrivals, self.spans = 0, [], [], []

    def _touch(self, model: str, keep_alive) -> None:
        pass  # what is loaded is decided by the slot scheduler below

    def _admit(self, model: str) -> None:
        """Wait for this request's turn and a free slot of its model, swapping
        the model in (once nothing runs) when it is not the loaded one."""
        ticket = object()
        with self._cv:
            self.arrivals.append(time.time())
            self._waiting.append(ticket)
            while True:
                if self._waiting[0] is ticket:
                    if model == self.current and self._active < self.slots:
                        break
                    if model != self.current and self._active == 0:
                        self.swaps += 1
                        self.swap_log.append((time.time(), self.current, model))
                        self.current, self.loaded = None, {}
                        until = time.monotonic() + self.swap_s
                        while (left := until - time.monotonic()) > 0:
                            self._cv.wait(left)
                        self.current, self.loaded = model, {model: 0.0}
                        continue
                self._cv.wait()
            self._waiting.popleft()
            self._active += 1
            self._cv.notify_all()

    def _dispatch(self, h, rec) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        if rec.method != "POST" or rec.path != "/api/chat" or not body.get("model"):
            return super()._dispatch(h, rec)
        self._admit(body["model"])
        start = time.time()
        try:
            time.sleep(self.tokens / self.tokens_per_s)
        finally:
            with self._cv:
                self._active -= 1
                self.spans.append((start, time.time()))
                self._cv.notify_all()
        return super()._dispatch(h, rec)

    def utilisation(self) -> tuple[float, float]:
        """(share of slot time spent generating, window seconds) while the
        backlog lasted: from the first request's arrival to the moment the
        last one got a slot (after that, no work waits: the slots empty as
        the last requests end)."""
        with self._cv:
            if not self.arrivals or not self.spans:
                return 0.0, 0.0
            t0, t1 = min(self.arrivals), max(s for s, _ in self.spans)
            busy = sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in self.spans)
        window = t1 - t0
        return (busy / (self.slots * window) if window > 0 else 0.0), window
