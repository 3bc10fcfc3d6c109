"""Domain metrics read from the periodic jobs' results: reminder ticks, the outbox relay, the
reconciliation (the push and sync ones are in tests/e2e/test_observability.py)."""

from __future__ import annotations

from habitjobs.observability.metrics import REGISTRY
from habitjobs.resources import Resources
from tests.support.workers import drain

PERIODIC = ("reminders.tick", "outbox.relay", "jobs.reconcile")


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


async def test_periodic_jobs_move_their_metrics(resources: Resources) -> None:
    specs = [resources.registry.get(name) for name in PERIODIC]
    before = {s.name: sample("habitjobs_jobs_completed_total", queue=s.queue, name=s.name) for s in specs}
    for spec in specs:
        await resources.producer.enqueue(spec.name, {})
    await drain(resources, queues=sorted({s.queue for s in specs}))
    for spec in specs:
        after = sample("habitjobs_jobs_completed_total", queue=spec.queue, name=spec.name)
        assert after == before[spec.name] + 1, spec.name
    # Each outcome of a tick has its series (zero when nothing was due), and the tick's lag was set.
    for outcome in ("due", "sent", "skipped"):
        assert REGISTRY.get_sample_value("habitjobs_reminders_total", {"outcome": outcome}) is not None
    assert REGISTRY.get_sample_value("habitjobs_reminder_tick_lag_seconds", {}) is not None
