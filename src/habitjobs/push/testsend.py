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
from habitjobs.resources import Resources

POLL_S = 0.2


class Platform(StrEnum):
    ios = "ios"
    android = "android"


async def send_test(
    settings: Settings, email: str, *, fake_device: Platform | None = None, wait_s: float = 0.0
) -> tuple[list[PushDelivery], list[str]]:
    """Stage a test push for ``email`` (registering a fake device first if asked); wait up to ``wait_s``
    for the outcomes. Returns the deliveries as last seen and the job ids."""
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
            if time.monotonic() >= deadline or all(r.status not in UNFINISHED for r in rows):
                return rows, job_ids
            await asyncio.sleep(POLL_S)
    finally:
        await resources.aclose()
