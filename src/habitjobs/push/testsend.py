"""The send-test flow of `habitjobs push send-test`: stage a test notification to every enabled device of
a user (registering a made-up device first if asked) and follow the deliveries until they are finished
or the wait is over. It opens the process's resources itself: it runs outside any API request or job."""

from __future__ import annotations

import asyncio
import time
import uuid
from enum import StrEnum

from habitjobs.accounts import service as accounts_service
from habitjobs.accounts.repository import get_or_create_user
from habitjobs.accounts.schemas import DevicePut
from habitjobs.config import Settings
from habitjobs.push import repository as push_repo
from habitjobs.push import service as push_service
from habitjobs.push.models import UNFINISHED, PushDelivery
from habitjobs.queue.inspect import JobView, get_job
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources

POLL_S = 0.2
# A job in one of these states will not touch its deliveries again (until an operator retries it).
JOB_OVER = ("completed", "failed")


class Platform(StrEnum):
    ios = "ios"
    android = "android"


async def send_test(
    settings: Settings, email: str, *, fake_device: Platform | None = None, wait_s: float = 0.0
) -> tuple[list[PushDelivery], list[str], list[JobView]]:
    """Stage a test push for ``email`` (registering a fake device first if asked); wait up to ``wait_s``
    for the outcomes — or until the job is over, whatever its deliveries say. Returns the deliveries and
    the jobs as last seen, and the job ids."""
    resources = Resources.open(settings, application_name="habitjobs-cli")
    try:
        async with resources.db.transaction() as session:
            if fake_device is not None:
                user = await get_or_create_user(session, email)
                await accounts_service.register_device(
                    session,
                    user.id,
                    uuid.uuid4(),
                    DevicePut(
                        platform=fake_device.value, push_token=f"dev-{uuid.uuid4().hex}", app_version="dev"
                    ),
                    max_devices=settings.max_devices_per_user,
                )
            ids, job_ids = await push_service.send_test(
                session, resources.outbox, email, now=resources.clock.now()
            )
        deadline = time.monotonic() + wait_s
        while True:
            async with resources.db.transaction() as session:
                rows = await push_repo.get_deliveries(session, ids)
            jobs = [job for job_id in job_ids if (job := await get_job(resources.producer, PUSH, job_id))]
            finished = all(r.status not in UNFINISHED for r in rows)
            jobs_over = len(jobs) == len(job_ids) and all(job.state in JOB_OVER for job in jobs)
            if time.monotonic() >= deadline or finished or jobs_over:
                return rows, job_ids, jobs
            await asyncio.sleep(POLL_S)
    finally:
        await resources.aclose()
