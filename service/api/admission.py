"""Which writes a process starts now, and which it sheds at once with a 503, so that readers come first.

Writes beyond `LIVELINE_MAX_WRITES_IN_FLIGHT` would only queue on their coverage's lock and on the pool, holding
connections the readers' renders need, and time out at the client anyway. While writes are being shed the
process is overloaded, and the edge stops making readers wait for renders (`shedding`; see `api/fast_path.py`).

A limit on the event loop's lag was tried beside this one and dropped: on the overload benchmark it changed
neither the writes taken nor readers' latency, and in the test suite ordinary pauses (a first request, a long
page) tripped it, refusing a quiet desk's write.
"""

from __future__ import annotations

import time

OVERLOAD_MEMORY = 1.0
"""Seconds after the last refusal during which the process counts as overloaded."""


class Admission:
    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._last_refusal = float("-inf")

    @property
    def shedding(self) -> bool:
        """Whether writes were refused lately: the process is overloaded."""
        return time.monotonic() - self._last_refusal < OVERLOAD_MEMORY

    def refuses(self) -> bool:
        """Whether a write may not start now (and, if so, note the overload)."""
        if self.in_flight < self.max_in_flight:
            return False
        self._last_refusal = time.monotonic()
        return True
