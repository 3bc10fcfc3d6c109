"""A token bucket per provider, in our own code (bullmq's limiter waits drainDelay instead of the
window, docs/engine.md, E3).

AIMD: a 429 halves the rate (down to a floor) and pauses sending until Retry-After; the rate then grows
back linearly to the target. A burst of 429s (hundreds of requests in flight answered together) is one
signal, not hundreds: the rate is halved at most once per ``THROTTLE_WINDOW_S``; later 429s in the window
only extend the pause. The bucket lives in one worker process: the configured rate is per process
(set it to the project's target divided by the number of worker processes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

THROTTLE_WINDOW_S = 1.0


class TokenBucket:
    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float | None = None,
        min_rate_per_s: float | None = None,
        recover_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``recover_s``: how long the rate takes to grow from zero back to ``rate_per_s`` after a 429."""
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.target_per_s = rate_per_s
        self.rate_per_s = rate_per_s
        # A tenth of a second's worth: enough to keep many streams busy, small enough not to burst a quota.
        self.burst = burst if burst is not None else max(1.0, rate_per_s / 10)
        self.min_rate_per_s = min_rate_per_s if min_rate_per_s is not None else max(1.0, rate_per_s / 64)
        self._increase_per_s2 = rate_per_s / recover_s
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self.paused_until = 0.0
        self._halved_at: float | None = None

    def _refill(self, now: float) -> None:
        # Time spent paused neither refills the bucket nor grows the rate.
        elapsed = max(0.0, now - max(self._updated, self.paused_until))
        self._updated = now
        if now >= self.paused_until:
            self.rate_per_s = min(self.target_per_s, self.rate_per_s + self._increase_per_s2 * elapsed)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)

    def reserve(self) -> tuple[bool, float]:
        """Take a token. Returns (reserved, wait_s).

        ``(True, 0)``: go now. ``(True, w)``: the token is yours in ``w`` seconds (sleep, then go).
        ``(False, w)``: the provider asked us to pause; nothing was reserved; ask again in ``w`` seconds.
        """
        now = self._clock()
        self._refill(now)
        if now < self.paused_until:
            return False, self.paused_until - now
        self._tokens -= 1
        if self._tokens >= 0:
            return True, 0.0
        return True, -self._tokens / self.rate_per_s

    def give_back(self) -> None:
        """Return a reserved token that was not used (the caller chose not to wait)."""
        self._tokens = min(self.burst, self._tokens + 1)

    def throttled(self, retry_after_s: float | None) -> None:
        """The provider answered 429: halve the rate, and pause until Retry-After."""
        now = self._clock()
        self._refill(now)
        if self._halved_at is None or now - self._halved_at >= THROTTLE_WINDOW_S:
            self._halved_at = now
            self.rate_per_s = max(self.min_rate_per_s, self.rate_per_s / 2)
        self._tokens = min(self._tokens, 0.0)
        if retry_after_s:
            self.paused_until = max(self.paused_until, now + retry_after_s)

    async def acquire(self, max_wait_s: float) -> float | None:
        """Wait for a token if that takes at most ``max_wait_s``; returns None when it is time to send.

        Otherwise returns how long the caller should wait (it reports a retry instead of sleeping long).
        """
        reserved, wait_s = self.reserve()
        if reserved and wait_s <= max_wait_s:
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                # A 429 may have arrived while this one slept: it must not go out into the pause.
                now = self._clock()
                if now < self.paused_until:
                    return self.paused_until - now
            return None
        if reserved:
            self.give_back()
        return wait_s
