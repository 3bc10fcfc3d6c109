"""Queue names, their defaults, and the rules for job names and job ids. One place for all of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

SYNC = "sync"
PUSH = "push"
ANALYTICS = "analytics"
SCHEDULER = "scheduler"
DEFAULT = "default"


@dataclass(frozen=True)
class QueueDefaults:
    name: str
    concurrency: int
    description: str


QUEUES: dict[str, QueueDefaults] = {
    q.name: q
    for q in (
        QueueDefaults(SYNC, 8, "merging offline uploads into PostgreSQL"),
        QueueDefaults(PUSH, 4, "push notification fan-out (each job sends up to 500 in parallel)"),
        QueueDefaults(ANALYTICS, 1, "statistics and streaks; low concurrency protects the database"),
        QueueDefaults(SCHEDULER, 2, "periodic ticks fired by BullMQ job schedulers"),
        QueueDefaults(DEFAULT, 4, "other user-triggered work (data exports)"),
    )
}

# The custom backoff type every job carries; the worker maps it to the job type's RetryPolicy.
BACKOFF_TYPE = "habitjobs"

JOB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class InvalidJobId(ValueError):
    pass


def check_job_id(job_id: str) -> str:
    """BullMQ refuses ids with ':' (key separator) and treats plain integers as its own counter."""
    if not job_id or len(job_id) > 200:
        raise InvalidJobId("a job id must have 1 to 200 characters")
    if ":" in job_id:
        raise InvalidJobId(f"a job id may not contain ':' ({job_id!r})")
    if job_id.isdigit():
        raise InvalidJobId(f"a job id may not be a plain integer ({job_id!r})")
    return job_id
