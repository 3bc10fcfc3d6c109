"""Domain metrics that no job result tells: push outcomes as they are written, provider pauses, the outbox
backlog (sampled by the worker's sampler)."""

from __future__ import annotations

from habitjobs.observability import metrics as m


def push_outcome(provider: str, outcome: str) -> None:
    if m.ENABLED:
        m.child(m.PUSH_DELIVERIES, provider, outcome).inc()
        if outcome == "token_invalid":
            m.child(m.PUSH_TOKENS_DISABLED, provider).inc()


def push_paused(scope: str, paused: bool) -> None:
    if m.ENABLED:
        if paused:
            m.child(m.PUSH_PAUSES, scope).inc()
        m.child(m.PUSH_PAUSED, scope).set(1 if paused else 0)
