"""THE place where a job's final failure reaches its domain.

Whatever ends a job as failed — its handler's last attempt or a ``PermanentFailure``, an invalid payload,
the stalled limit ("job stalled more than allowable limit", applied by bullmq when the job is next taken),
an operator removing it — ends here, and the job type's ``on_final_failure`` hook makes the rows that
waited on the job say so. Three callers, one function:

- the worker runtime, on bullmq's ``failed`` event when no attempt is left (this covers the stalled limit:
  bullmq marks the job and the next worker that takes it fails it and emits ``failed``);
- the reconciliation, for a job found failed in Redis while its rows still wait (the worker died before
  its hook ran, or the database was away), and for a job an operator removed;
- nothing else: handlers do not update their rows on a last attempt themselves.

Hooks are idempotent (a failure may be settled twice), and a later run of the same job id — an operator
retrying it — takes the rows up again.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from habitjobs.queue.registry import FailedJob

if TYPE_CHECKING:
    from habitjobs.queue.context import QueueResources

log = logging.getLogger(__name__)


async def settle_final_failure(resources: QueueResources, failed: FailedJob) -> bool:
    """Tell the job's domain that it failed for good. Returns False when its type declares no hook."""
    spec = resources.registry.find(failed.name)
    if spec is None or spec.on_final_failure is None:
        return False
    await spec.on_final_failure(resources, failed)
    log.info(
        "job %s (%s) failed for good; its domain was told: %s", failed.job_id, failed.name, failed.reason
    )
    return True


def removed_key(prefix: str) -> str:
    """Jobs an operator removed whose domain has not been told yet: hash of job id → JSON."""
    return f"{prefix}:reconcile:removed"


def removal_record(name: str, data: Any, reason: str) -> str:
    return json.dumps({"name": name, "data": data if isinstance(data, dict) else {}, "reason": reason})


def failed_from_record(job_id: str, raw: str) -> FailedJob:
    record = json.loads(raw)
    return FailedJob(job_id, str(record["name"]), dict(record.get("data") or {}), str(record["reason"]))
