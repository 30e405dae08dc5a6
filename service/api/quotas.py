"""Per-token write quotas: a token bucket per token name in each process, refused with 429 and Retry-After.

Kept in memory, so each `liveline serve` process counts on its own (with N processes a token may write N times
the quota); a newsroom's desks write a few posts a minute, and the defaults (600 a minute, 60 at once) only stop
a runaway script. Public reads have no quota: caching and the shared fan-out make them cheap.
"""

from __future__ import annotations

import math
import time


class WriteQuotaExceeded(Exception):
    """Answered 429 with Retry-After (api/problems.py)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class WriteQuotas:
    def __init__(self, per_minute: int, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(max(burst, 1))
        self._buckets: dict[str, tuple[float, float]] = {}
        """Token name -> (writes available, when last counted)."""

    def take(self, name: str) -> None:
        """Count one write for this token, or refuse it with the seconds until one is available."""
        now = time.monotonic()
        available, since = self._buckets.get(name, (self._burst, now))
        available = min(self._burst, available + (now - since) * self._rate)
        if available < 1.0:
            self._buckets[name] = (available, now)
            wait = math.ceil((1.0 - available) / self._rate) if self._rate > 0 else 60
            raise WriteQuotaExceeded(
                f"token {name!r} is over its write quota ({round(self._rate * 60)} a minute); retry in {wait} s", wait
            )
        self._buckets[name] = (available - 1.0, now)
