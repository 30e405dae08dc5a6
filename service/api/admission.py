"""Which writes a process starts now, and which it sheds at once with a 503, so that readers come first.

Writes beyond `LIVELINE_MAX_WRITES_IN_FLIGHT` would only queue on their coverage's lock and on the pool, holding
connections the readers' renders need, and time out at the client anyway. While writes are being shed the
process is overloaded, and the edge stops making readers wait for renders (`shedding`; see `api/fast_path.py`).

While overloaded, a process also starts at most `LIVELINE_OVERLOAD_WRITES_PER_SECOND` (10) writes a second. A
write costs the one event loop about 1.5 ms of Python (litestar, asyncpg, sanitising), and the writes taken held
readers up far beyond that share: on `bench/overload.py` readers' p99 was 1.05-1.4x idle with 1-5 writes a second
taken, 1.5-2.1x with 10, 2.0-3.4x with 25-100. The limit is a token bucket (a tenth of a second's writes, at
least one, may start at once) that only applies while refusals are recent, so a desk writing at its own pace, or
a burst below the in-flight limit, never meets it.
"""

from __future__ import annotations

import time

OVERLOAD_MEMORY = 1.0
"""Seconds after the last refusal during which the process counts as overloaded."""


class Admission:
    def __init__(self, max_in_flight: int, overload_rate: float = 0.0) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._last_refusal = float("-inf")
        self._rate = overload_rate
        self._burst = max(overload_rate / 10, 1.0)
        self._budget = self._burst
        self._refilled = time.monotonic()

    @property
    def shedding(self) -> bool:
        """Whether writes were refused lately: the process is overloaded."""
        return self._overloaded(time.monotonic())

    def _overloaded(self, now: float) -> bool:
        return now - self._last_refusal < OVERLOAD_MEMORY

    def refuses(self) -> bool:
        """Whether a write may not start now (and, if so, note the overload)."""
        now = time.monotonic()
        if self.in_flight < self.max_in_flight and self._within_rate(now):
            return False
        self._last_refusal = now
        return True

    def _within_rate(self, now: float) -> bool:
        """Whether the overload rate lets one more write start now (and, if so, count it)."""
        if not self._rate:
            return True
        self._budget = min(self._burst, self._budget + (now - self._refilled) * self._rate)
        self._refilled = now
        if not self._overloaded(now):
            return True  # writes start as they come
        if self._budget < 1:
            return False
        self._budget -= 1
        return True
