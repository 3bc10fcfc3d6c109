"""Every Prometheus metric the processes export, defined once (names used by deploy/ alerts and dashboard).

Cheap on the hot paths: labelled children are cached per label set (``child``), so a request or a job
costs a dict lookup and a few lock-free-ish increments. When ``HABITJOBS_METRICS`` is off nothing is
recorded at all (each hook checks one module-level flag).

Naming: ``habitjobs_`` prefix; ``_total`` counters, ``_seconds`` durations. Label values are bounded: route
templates (never raw paths), job names, queue names, providers, reasons and codes from fixed sets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
ENABLED = True


def set_enabled(on: bool) -> None:
    global ENABLED
    ENABLED = on


_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_JOB = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0)
_LAG = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 900.0)

# --- API ----------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "habitjobs_http_requests_total",
    "HTTP requests answered",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "habitjobs_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge("habitjobs_http_requests_in_flight", "HTTP requests being answered", registry=REGISTRY)
HTTP_REJECTED = Counter(
    "habitjobs_http_rejected_total",
    "Requests refused with 429 (rate limited) or 503 (a store is unavailable)",
    ["route", "status"],
    registry=REGISTRY,
)

# --- worker -------------------------------------------------------------------------------------------
JOBS_COMPLETED = Counter(
    "habitjobs_jobs_completed_total", "Jobs whose handler returned", ["queue", "name"], registry=REGISTRY
)
JOBS_FAILED = Counter(
    "habitjobs_jobs_failed_total",
    "Job attempts that failed; final=true when the job will not run again",
    ["queue", "name", "final"],
    registry=REGISTRY,
)
JOBS_RETRIED = Counter(
    "habitjobs_jobs_retried_total",
    "Failed attempts that will run again",
    ["queue", "name"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "habitjobs_job_duration_seconds",
    "Time a job's handler ran (any outcome)",
    ["queue", "name"],
    buckets=_JOB,
    registry=REGISTRY,
)
QUEUE_JOBS = Gauge(
    "habitjobs_queue_jobs",
    "Jobs per queue and state (sampled periodically)",
    ["queue", "state"],
    registry=REGISTRY,
)
QUEUE_OLDEST_WAITING = Gauge(
    "habitjobs_queue_oldest_waiting_seconds",
    "Age of the oldest job waiting to run per queue, 0 when none waits (sampled periodically)",
    ["queue"],
    registry=REGISTRY,
)
JOBS_STALLED = Counter(
    "habitjobs_jobs_stalled_recovered_total",
    "Jobs whose worker lost them (crash, lock expiry), taken back by a stalled-job check",
    ["queue"],
    registry=REGISTRY,
)
LOCK_RENEWALS_MISSED = Counter(
    "habitjobs_lock_renewals_missed_total",
    "Job locks that could not be renewed (the job may run twice)",
    ["queue"],
    registry=REGISTRY,
)
WORKER_READY = Gauge(
    "habitjobs_worker_ready",
    "1 when this worker serves its queues and its last sample reached Redis and PostgreSQL, else 0",
    registry=REGISTRY,
)
LOOP_BLOCKED = Counter(
    "habitjobs_loop_blocked_total", "Warnings that a job handler blocked the event loop", registry=REGISTRY
)

# --- domains ------------------------------------------------------------------------------------------
PUSH_DELIVERIES = Counter(
    "habitjobs_push_deliveries_total",
    "Push deliveries tried, by provider and outcome (sent, token_invalid, bad_request, retry, auth_config)",
    ["provider", "outcome"],
    registry=REGISTRY,
)
PUSH_PAUSES = Counter(
    "habitjobs_push_provider_pauses_total",
    "Times a provider scope was paused after refused credentials",
    ["scope"],
    registry=REGISTRY,
)
PUSH_PAUSED = Gauge(
    "habitjobs_push_provider_paused",
    "1 while this worker has the provider scope paused (refused credentials)",
    ["scope"],
    registry=REGISTRY,
)
PUSH_TOKENS_DISABLED = Counter(
    "habitjobs_push_tokens_disabled_total",
    "Device tokens disabled because the provider called them invalid",
    ["provider"],
    registry=REGISTRY,
)
SYNC_MUTATIONS = Counter(
    "habitjobs_sync_mutations_total",
    "Uploaded mutations merged: applied, stale (an older write lost), duplicate, rejected (by code)",
    ["outcome", "code"],
    registry=REGISTRY,
)
SYNC_MERGE_LAG = Histogram(
    "habitjobs_sync_merge_lag_seconds",
    "From an upload's arrival to its merge being applied",
    buckets=_LAG,
    registry=REGISTRY,
)
REMINDERS = Counter(
    "habitjobs_reminders_total",
    "Reminders per tick outcome: due (claimed), sent (notified), skipped (not relevant or too late)",
    ["outcome"],
    registry=REGISTRY,
)
REMINDER_TICK_LAG = Gauge(
    "habitjobs_reminder_tick_lag_seconds",
    "How late the last reminder tick ran after it was due",
    registry=REGISTRY,
)
ANALYTICS_RUN = Histogram(
    "habitjobs_analytics_rollup_duration_seconds",
    "Time of a daily roll-up run per time zone",
    ["zone"],
    buckets=_JOB,
    registry=REGISTRY,
)
ANALYTICS_ROWS = Counter(
    "habitjobs_analytics_rollup_users_total",
    "Users rolled up per time zone",
    ["zone"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "habitjobs_outbox_backlog", "Outbox rows not yet enqueued (sampled periodically)", registry=REGISTRY
)
OUTBOX_RELAY_LAG = Gauge(
    "habitjobs_outbox_relay_lag_seconds",
    "Age of the oldest outbox row not yet enqueued, 0 when none (sampled periodically)",
    registry=REGISTRY,
)
OUTBOX_RELAYED = Counter(
    "habitjobs_outbox_relayed_total",
    "Outbox rows the relay enqueued (their after-commit enqueue did not happen)",
    registry=REGISTRY,
)
RECONCILED = Counter(
    "habitjobs_reconcile_total",
    "What the reconciliation found and did, by kind (see habitjobs jobs reconcile)",
    ["kind"],
    registry=REGISTRY,
)


def child(metric: Any, *labels: str) -> Any:
    """The labelled child of ``metric`` (prometheus_client caches it; this skips its argument checks)."""
    cache: dict[tuple[str, ...], Any] = metric.__dict__.setdefault("_hj_children", {})
    found = cache.get(labels)
    if found is None:
        found = cache[labels] = metric.labels(*labels)
    return found


def every_name() -> set[str]:
    """Every sample name this process can export (what deploy/ may refer to)."""
    names: set[str] = set()
    for metric in REGISTRY.collect():
        base = metric.name
        if metric.type == "counter":
            names.update({f"{base}_total", f"{base}_created"})
        elif metric.type == "histogram":
            names.update({f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"})
        else:
            names.add(base)
    return names


def when_enabled(fn: Callable[..., None]) -> Callable[..., None]:
    def hook(*args: Any, **kwargs: Any) -> None:
        if ENABLED:
            fn(*args, **kwargs)

    hook.__doc__ = fn.__doc__
    return hook
