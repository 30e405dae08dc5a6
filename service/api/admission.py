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

That rate is shared fairly between the credentials writing (each `Authorization` value seen in the last second):
each may start at most its share (the rate over their number plus one, so that a share is always left for a desk
that was quiet), so one runaway script flooding with its token cannot take the writes of the desks that keep
writing at their pace: its excess is refused at once, before its token is even looked up, and its own quota
(api/quotas.py) still applies to what it starts. A credential counts as itself once this process has answered it
with anything but 401 (`trust`); until then it shares one part with every other credential not known yet, so a
flood of made-up tokens, a new one a request, is one writer among the desks and not thousands.
"""

from __future__ import annotations

import time
from collections import OrderedDict

OVERLOAD_MEMORY = 1.0
"""Seconds after the last refusal during which the process counts as overloaded."""
UNKNOWN = "\x00unknown"
"""The one share of every credential not known yet (no header value can be it: it has a NUL)."""
KNOWN_CREDENTIALS = 10_000


class Admission:
    def __init__(self, max_in_flight: int, overload_rate: float = 0.0) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._last_refusal = float("-inf")
        self._rate = overload_rate
        self._burst = max(overload_rate / 10, 1.0)
        self._budget = self._burst
        self._refilled = time.monotonic()
        self._shares: dict[str, tuple[float, float]] = {}
        """Credential -> (writes it may start, when it last asked and was counted), kept while overloaded."""
        self._known: OrderedDict[str, None] = OrderedDict()
        """Credentials this process answered with anything but 401, the most recent last."""

    def knows(self, credential: str) -> bool:
        return credential in self._known

    def trust(self, credential: str, status: int) -> None:
        """Note how a request with this credential was answered: 401 forgets it, anything else makes it known."""
        if status == 401:
            self._known.pop(credential, None)
            return
        self._known[credential] = None
        self._known.move_to_end(credential)
        if len(self._known) > KNOWN_CREDENTIALS:
            self._known.popitem(last=False)

    @property
    def shedding(self) -> bool:
        """Whether writes were refused lately: the process is overloaded."""
        return self._overloaded(time.monotonic())

    def _overloaded(self, now: float) -> bool:
        return now - self._last_refusal < OVERLOAD_MEMORY

    def refuses(self, credential: str = "") -> bool:
        """Whether a write sent with `credential` (its Authorization header) may not start now (and, if so, note
        the overload)."""
        now = time.monotonic()
        if self.in_flight < self.max_in_flight and self._within_rate(now, credential):
            return False
        self._last_refusal = now
        return True

    def _within_rate(self, now: float, credential: str) -> bool:
        """Whether the overload rate, and this credential's share of it, let one more write start now (and, if
        so, count it)."""
        if not self._rate:
            return True
        # One write more than the burst may wait in the budget: the share kept free, so that a write from a quiet
        # credential finds the budget not just emptied by a busy one.
        self._budget = min(self._burst + 1, self._budget + (now - self._refilled) * self._rate)
        self._refilled = now
        if not self._overloaded(now):
            self._shares.clear()
            return True  # writes start as they come
        key = credential if self.knows(credential) else UNKNOWN
        share = self._share(now, key)
        if self._budget < 1 or share < 1:
            return False
        self._budget -= 1
        self._shares[key] = (share - 1, now)
        return True

    def _share(self, now: float, credential: str) -> float:
        """The writes `credential` may start now: one when it first asks, then its part of the rate."""
        if len(self._shares) > 1024:  # a flood of made-up credentials: forget those gone quiet
            self._shares = {c: s for c, s in self._shares.items() if now - s[1] < OVERLOAD_MEMORY}
        active = sum(1 for _, asked in self._shares.values() if now - asked < OVERLOAD_MEMORY)
        available, asked = self._shares.get(credential, (1.0, now))
        rate = self._rate / (active + 1)  # a share kept free: a desk that was quiet finds the budget not all taken
        available = min(1.0, available + (now - asked) * rate)
        self._shares[credential] = (available, now)
        return available
