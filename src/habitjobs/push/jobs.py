"""Job types of the push domain: ``push.send_batch``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from habitjobs.errors import PermanentFailure, RetryLater, SlowDown
from habitjobs.push import dispatch, service
from habitjobs.push.service import MAX_BATCH, SEND_JOB
from habitjobs.queue.names import PUSH
from habitjobs.queue.registry import AwaitedPage, AwaitedScan, FailedJob, JobSpec
from habitjobs.queue.retry import RetryPolicy

if TYPE_CHECKING:
    from habitjobs.resources import JobContext, Resources


class SendBatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    delivery_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_BATCH)


async def send_batch(ctx: JobContext, payload: SendBatch) -> dict[str, Any]:
    """Send the batch's deliveries that are still due. Each attempt re-claims only unfinished rows.

    Outcomes: refused credentials → the job fails at once (visible in the failed list; retrying it after the
    fix sends what is still pending and relevant); only "slow down" answers (429) → ``SlowDown``, delayed
    without counting an attempt; other deliveries to try again → ``RetryLater`` no sooner than the providers
    asked; otherwise the counts per outcome.
    """
    async with ctx.resources.db.transaction() as session:
        # After an operator's retry of a job that failed for good, its deliveries are taken up again.
        await service.reopen_for_job(session, payload.delivery_ids)
    report = await dispatch.send_batch(ctx.resources, list(payload.delivery_ids))
    for line in report.bad_requests:
        await ctx.log(f"refused as malformed (not retried): {line}")
    if report.auth_errors:
        raise PermanentFailure(
            "push credentials or configuration refused: "
            + "; ".join(report.auth_errors)
            + f" ({report.counts.get('auth_config', 0)} deliveries not sent; fix it, then retry this job)"
        )
    if report.only_throttled:
        # The providers asked us to slow down; nothing failed: the job is delayed, no attempt counted.
        raise SlowDown(
            f"{report.throttled} deliveries to send again after a slow-down ({report.as_dict()})",
            after_s=report.retry_after_s or 1.0,
        )
    if report.retry_after_s is not None:
        leased = "; some are leased by another worker" if report.counts.get("leased_elsewhere") else ""
        raise RetryLater(
            f"{report.counts.get('retry', 0)} deliveries to send again later{leased} ({report.as_dict()})",
            after_s=report.retry_after_s,
        )
    return report.as_dict()


async def on_send_failed(resources: Resources, failed: FailedJob) -> None:
    """The send job failed for good: its unfinished deliveries are ``failed`` (an operator's retry of the
    job takes them up again)."""
    ids: list[uuid.UUID] = []
    for value in failed.data.get("delivery_ids") or []:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    if ids:
        async with resources.db.transaction() as session:
            await service.fail_for_job(session, ids, failed.reason, now=resources.clock.now())


async def awaiting_sends(resources: Resources, scan: AwaitedScan) -> AwaitedPage:
    async with resources.db.transaction() as session:
        return await service.awaiting_sends(session, scan, now=resources.clock.now())


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        SEND_JOB,
        PUSH,
        SendBatch,
        send_batch,
        policy=RetryPolicy(attempts=8, base_delay_s=2, max_delay_s=300),
        description="send up to 500 push deliveries through FCM/APNs and record each outcome",
        on_final_failure=on_send_failed,
        awaiting=awaiting_sends,
    ),
]
