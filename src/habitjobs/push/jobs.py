"""Job types of the push domain: ``push.send_batch``."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from habitjobs.errors import PermanentFailure, RetryLater
from habitjobs.push import dispatch
from habitjobs.push.service import MAX_BATCH, SEND_JOB
from habitjobs.queue.names import PUSH
from habitjobs.queue.registry import JobContext, JobSpec
from habitjobs.queue.retry import RetryPolicy


class SendBatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    delivery_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_BATCH)


async def send_batch(ctx: JobContext, payload: SendBatch) -> dict[str, Any]:
    """Send the batch's deliveries that are still due. Each attempt re-claims only unfinished rows.

    Outcomes: refused credentials → the job fails at once (visible in the failed list; retrying it after the
    fix sends what is still pending and relevant); deliveries to try again → ``RetryLater`` no sooner than the
    providers asked; otherwise the counts per outcome.
    """
    report = await dispatch.send_batch(ctx.resources, list(payload.delivery_ids))
    for line in report.bad_requests:
        await ctx.log(f"refused as malformed (not retried): {line}")
    if report.auth_errors:
        raise PermanentFailure(
            "push credentials or configuration refused: "
            + "; ".join(report.auth_errors)
            + f" ({report.counts.get('auth_config', 0)} deliveries left pending; fix it, then retry this job)"
        )
    if report.retry_after_s is not None:
        leased = "; some are leased by another worker" if report.counts.get("leased_elsewhere") else ""
        raise RetryLater(
            f"{report.counts.get('retry', 0)} deliveries to send again later{leased} ({report.as_dict()})",
            after_s=report.retry_after_s,
        )
    return report.as_dict()


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        SEND_JOB,
        PUSH,
        SendBatch,
        send_batch,
        policy=RetryPolicy(attempts=8, base_delay_s=2, max_delay_s=300),
        description="send up to 500 push deliveries through FCM/APNs and record each outcome",
    ),
]
