"""Retry policy per job type. Pure: no I/O, no bullmq; the runtime feeds it and obeys it.

Backoff is exponential (or fixed) with *full jitter* (a uniform draw between the floor and the capped
ceiling) so that a thousand jobs failing together do not retry together. bullmq-python ignores its own
``jitter`` option, so the worker installs :meth:`RetryPolicy.delay_ms` as its custom backoff strategy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Backoff = Literal["fixed", "exponential"]

# bullmq-python rounds delays below one second up to a whole second (docs/engine.md, E2): never promise less.
MIN_DELAY_S = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts the first run: attempts=3 means one run and up to two retries."""

    attempts: int = 3
    backoff: Backoff = "exponential"
    base_delay_s: float = 5.0
    max_delay_s: float = 3600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    def ceiling_s(self, attempts_made: int) -> float:
        """The largest delay after the ``attempts_made``-th failed attempt (1-based)."""
        if self.backoff == "fixed":
            return min(self.base_delay_s, self.max_delay_s)
        # Cap the exponent before computing: 2**1000 would overflow a float.
        exponent = min(max(attempts_made - 1, 0), 62)
        return min(self.base_delay_s * (2.0**exponent), self.max_delay_s)

    def delay_s(
        self,
        attempts_made: int,
        *,
        retry_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait before the next attempt, after ``attempts_made`` failed attempts.

        A provider's Retry-After is a lower bound that overrides the cap (waiting less is pointless).
        """
        ceiling = self.ceiling_s(attempts_made)
        floor = min(MIN_DELAY_S, ceiling)
        delay = (rng or random).uniform(floor, ceiling) if self.jitter and ceiling > floor else ceiling
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def delay_ms(self, attempts_made: int, *, retry_after_s: float | None = None) -> int:
        """The same, in whole milliseconds as bullmq wants (0 would mean "retry immediately")."""
        return max(1, round(self.delay_s(attempts_made, retry_after_s=retry_after_s) * 1000))

    def exhausted(self, attempts_made: int) -> bool:
        return attempts_made >= self.attempts


DEFAULT_POLICY = RetryPolicy()
# For periodic ticks: the next tick is the retry.
NO_RETRY = RetryPolicy(attempts=1, base_delay_s=0, max_delay_s=0)
