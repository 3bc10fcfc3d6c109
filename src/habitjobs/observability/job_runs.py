"""A job's run, observed: its context variables for the log lines it writes, its metrics, and the domain
metrics read from what its handler returned (so the domains themselves stay free of metric calls)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from habitjobs.observability import context, tracing
from habitjobs.observability import metrics as m

T = TypeVar("T")


async def run_job(
    queue: str,
    name: str,
    job_id: str,
    request_id: str | None,
    enqueued_ms: float | None,
    call: Callable[[], Awaitable[T]],
    trace: Mapping[str, str] | None = None,
) -> T:
    """Run ``call`` (the handler) with the job's log context, and count it; when tracing, in a span that
    continues the trace ``trace`` (the request's that started the job)."""
    if tracing.ENABLED:
        attributes = {"job.id": job_id, "job.name": name, "job.queue": queue}
        with tracing.span(f"job {name}", kind="CONSUMER", parent=trace, attributes=attributes):
            return await _run(queue, name, job_id, request_id, enqueued_ms, call)
    return await _run(queue, name, job_id, request_id, enqueued_ms, call)


async def _run(
    queue: str,
    name: str,
    job_id: str,
    request_id: str | None,
    enqueued_ms: float | None,
    call: Callable[[], Awaitable[T]],
) -> T:
    tokens = (
        context.job_id.set(job_id),
        context.job_name.set(name),
        context.request_id.set(request_id),
    )
    started = time.perf_counter()
    try:
        result = await call()
        if m.ENABLED:
            m.child(m.JOBS_COMPLETED, queue, name).inc()
            m.child(m.JOB_DURATION, queue, name).observe(time.perf_counter() - started)
            observer = _DOMAIN.get(name)
            if observer is not None and isinstance(result, Mapping):
                observer(result, enqueued_ms, time.perf_counter() - started)
        return result
    except BaseException:
        if m.ENABLED:
            m.child(m.JOB_DURATION, queue, name).observe(time.perf_counter() - started)
        raise
    finally:
        context.request_id.reset(tokens[2])
        context.job_name.reset(tokens[1])
        context.job_id.reset(tokens[0])


def job_failed(queue: str, name: str, *, final: bool) -> None:
    if m.ENABLED:
        m.child(m.JOBS_FAILED, queue, name, "true" if final else "false").inc()
        if not final:
            m.child(m.JOBS_RETRIED, queue, name).inc()


def stalled(queue: str, count: int = 1) -> None:
    if m.ENABLED:
        m.child(m.JOBS_STALLED, queue).inc(count)


def lock_renewals_missed(queue: str, count: int = 1) -> None:
    if m.ENABLED:
        m.child(m.LOCK_RENEWALS_MISSED, queue).inc(count)


def loop_blocked() -> None:
    if m.ENABLED:
        m.LOOP_BLOCKED.inc()


# --- domain metrics from handler results ----------------------------------------------------------------


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sync(result: Mapping[str, Any], enqueued_ms: float | None, _took_s: float) -> None:
    applied = _int(result.get("applied"))
    if applied:
        m.child(m.SYNC_MUTATIONS, "applied", "").inc(applied)
    stale = _int(result.get("ignored_stale"))
    if stale:
        m.child(m.SYNC_MUTATIONS, "stale", "").inc(stale)
    duplicate = _int(result.get("already_applied"))
    if duplicate:
        m.child(m.SYNC_MUTATIONS, "duplicate", "").inc(duplicate)
    codes = result.get("rejected_codes")
    if isinstance(codes, Mapping):
        for code, count in codes.items():
            m.child(m.SYNC_MUTATIONS, "rejected", str(code)).inc(_int(count))
    if enqueued_ms and result.get("status") == "applied":
        m.SYNC_MERGE_LAG.observe(max(0.0, time.time() - enqueued_ms / 1000))


def _reminders(result: Mapping[str, Any], enqueued_ms: float | None, took_s: float) -> None:
    m.child(m.REMINDERS, "due").inc(_int(result.get("claimed")))
    m.child(m.REMINDERS, "sent").inc(_int(result.get("notified")))
    m.child(m.REMINDERS, "skipped").inc(_int(result.get("not_relevant")) + _int(result.get("too_late")))
    if enqueued_ms:
        # A tick's job is created when it is due: how long it waited to start is the tick's lag.
        m.REMINDER_TICK_LAG.set(max(0.0, time.time() - enqueued_ms / 1000 - took_s))


def _rollup(result: Mapping[str, Any], _enqueued_ms: float | None, took_s: float) -> None:
    zone = result.get("zone")
    if result.get("status") == "finished" and isinstance(zone, str):
        m.child(m.ANALYTICS_ROWS, zone).inc(_int(result.get("users")))
        m.child(m.ANALYTICS_RUN, zone).observe(took_s)


def _relay(result: Mapping[str, Any], _enqueued_ms: float | None, _took_s: float) -> None:
    m.OUTBOX_RELAYED.inc(_int(result.get("relayed")))


def _reconcile(result: Mapping[str, Any], _enqueued_ms: float | None, _took_s: float) -> None:
    for kind, count in result.items():
        if _int(count):
            m.child(m.RECONCILED, str(kind)).inc(_int(count))


_DOMAIN: dict[str, Callable[[Mapping[str, Any], float | None, float], None]] = {
    "sync.apply_batch": _sync,
    "reminders.tick": _reminders,
    "analytics.daily_rollup": _rollup,
    "outbox.relay": _relay,
    "jobs.reconcile": _reconcile,
}
